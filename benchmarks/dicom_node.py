"""Load on the DICOM node: N instances over M parallel associations, nothing lost; throughput and peak memory.

    python benchmarks/dicom_node.py [--count 100] [--size 512] [--associations 8] [--device cpu]

Starts ``xvertnet serve`` in a subprocess with a pynetdicom storage SCP as its destination (in this
process, counting what arrives), sends ``--count`` radiographs (RG1 resized to ``--size`` pixels,
each its own SOP Instance UID) over ``--associations`` parallel associations, and waits until every
derived image has arrived. Prints the time to acknowledge all, the end-to-end throughput, the
node's peak resident memory (VmHWM) and how many were lost (must be 0).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pydicom
import yaml

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def radiograph(size: int):
    """RG1 resized to ``size`` x ``size``, uncompressed 16-bit CR."""
    from pydicom.uid import ExplicitVRLittleEndian
    from skimage.transform import resize

    from xvertnet.demo.demo_data import real_radiograph_path

    dataset = pydicom.dcmread(real_radiograph_path())
    pixels = resize(dataset.pixel_array.astype(np.float64), (size, size), preserve_range=True, anti_aliasing=True)
    dataset.PixelData = np.rint(pixels).astype(np.uint16).tobytes()
    dataset.Rows = dataset.Columns = size
    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit = 16, 15, 14
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return dataset


def measure(count: int, size: int, associations: int, device: str) -> dict:
    """Start a node and a sink (the PACS), send ``count`` radiographs of ``size`` over ``associations`` parallel
    associations, and wait for their enhanced copies at the sink."""
    from pynetdicom import AE, AllStoragePresentationContexts, evt
    from pynetdicom.sop_class import Verification

    received: set[str] = set()
    lock = threading.Lock()

    def on_store(event):
        with lock:
            received.add(str(event.dataset.SOPInstanceUID))
        return 0x0000

    sink_port, node_port = free_port(), free_port()
    sink = AE(ae_title="SINK")
    sink.supported_contexts = AllStoragePresentationContexts
    server = sink.start_server(("127.0.0.1", sink_port), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)])
    folder = Path(tempfile.mkdtemp(prefix="xvertnet-node-bench-"))
    settings = {
        "port": node_port,
        "queue": str(folder / "queue"),
        "destinations": [{"ae_title": "SINK", "host": "127.0.0.1", "port": sink_port}],
        "device": device,
    }
    (folder / "node.yaml").write_text(yaml.safe_dump(settings))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]))
    log = open(folder / "node.log", "w")
    node = subprocess.Popen(
        [sys.executable, "-m", "xvertnet", "serve", "--config", str(folder / "node.yaml")],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    template = radiograph(size)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            probe = AE(ae_title="BENCH")
            probe.add_requested_context(Verification)
            assoc = probe.associate("127.0.0.1", node_port, ae_title="XVERTNET")
            if assoc.is_established:
                assoc.release()
                break
            time.sleep(0.5)
        uids = [f"{template.SOPInstanceUID}.{index + 1}" for index in range(count)]
        statuses: list[int] = []

        def sender(part: list[str]) -> None:
            ae = AE(ae_title="BENCH")
            ae.add_requested_context(template.SOPClassUID, template.file_meta.TransferSyntaxUID)
            assoc = ae.associate("127.0.0.1", node_port, ae_title="XVERTNET")
            for uid in part:
                dataset = template.copy()
                dataset.SOPInstanceUID = uid
                dataset.file_meta.MediaStorageSOPInstanceUID = uid
                status = assoc.send_c_store(dataset)
                with lock:
                    statuses.append(getattr(status, "Status", -1))
            assoc.release()

        start = time.perf_counter()
        threads = [threading.Thread(target=sender, args=(uids[k::associations],)) for k in range(associations)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        acknowledged = time.perf_counter() - start
        while time.perf_counter() - start < 3600 and len(received) < count:
            time.sleep(0.5)
        total = time.perf_counter() - start
        peak_kb = 0
        for line in Path(f"/proc/{node.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                peak_kb = int(line.split()[1])
        return {
            "count": count,
            "size": size,
            "associations": associations,
            "ok": sum(status == 0 for status in statuses),
            "acknowledged_s": acknowledged,
            "delivered": len(received),
            "total_s": total,
            "peak_mib": peak_kb / 1024,
        }
    finally:
        node.terminate()
        node.wait(timeout=60)
        server.shutdown()
        log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, nargs="+", default=[100], help="instances sent, one run per value")
    parser.add_argument("--size", type=int, nargs="+", default=[512], help="image side of each run (same length)")
    parser.add_argument("--associations", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--markdown", type=Path, help="also write the table as Markdown (a docs table) to this file")
    args = parser.parse_args()
    if len(args.count) != len(args.size):
        parser.error("--count and --size need one value per run each")
    rows = [
        "| instances | size | associations | acknowledged | delivered enhanced | node peak memory | lost |",
        "|---|---|---|---|---|---|---|",
    ]
    for count, size in zip(args.count, args.size):
        r = measure(count, size, args.associations, args.device)
        print(f"{count} instances of {size} x {size} over {args.associations} associations")
        print(
            f"acknowledged {r['ok']}/{count} in {r['acknowledged_s']:.1f} s ({count / r['acknowledged_s']:.1f} per s)"
        )
        print(
            f"delivered {r['delivered']}/{count} enhanced in {r['total_s']:.1f} s "
            f"({r['delivered'] / r['total_s']:.2f} per s end to end)"
        )
        print(f"node peak resident memory {r['peak_mib']:.0f} MiB; lost {count - r['delivered']}", flush=True)
        rows.append(
            f"| {count} | {size} x {size} | {args.associations} | {r['ok']} in {r['acknowledged_s']:.1f} s "
            f"({count / r['acknowledged_s']:.0f} per s) | {r['delivered']} in {r['total_s']:.1f} s "
            f"({r['delivered'] / r['total_s']:.1f} per s) | {r['peak_mib']:.0f} MiB | {count - r['delivered']} |"
        )
    if args.markdown:
        from xvertnet.reporting.docs_tables import benchmark_command, write_run_table

        note = (
            f"RG1 resized, each instance with its own SOP Instance UID; a pynetdicom storage SCP on 127.0.0.1 stands in "
            f"for the PACS; the node enhances on {args.device}, one image at a time; peak = the node process's VmHWM."
        )
        write_run_table(args.markdown, benchmark_command(), "\n".join(rows) + "\n\n" + note)


if __name__ == "__main__":
    main()
