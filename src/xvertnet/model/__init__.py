"""The XVertNet network, its losses, its training and its inference chain."""
