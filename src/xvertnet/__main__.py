import sys

from xvertnet.cli import main

sys.exit(main())
