"""The DICOM node against a real PACS: Debian's Orthanc on 127.0.0.1, images sent with pynetdicom, the derived series
looked up through Orthanc's REST API; refusals; a SIGKILL with images queued, then a restart that delivers them."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pydicom
import pytest
import yaml
from repo_paths import REPO

from xvertnet.demo.demo_data import real_radiograph_path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def orthanc_binary() -> str | None:
    found = shutil.which("Orthanc") or ("/usr/sbin/Orthanc" if Path("/usr/sbin/Orthanc").is_file() else None)
    if found or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "install", "-y", "-q", "orthanc"], env=env, capture_output=True, timeout=900)
    return shutil.which("Orthanc") or ("/usr/sbin/Orthanc" if Path("/usr/sbin/Orthanc").is_file() else None)


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory):
    """A real Orthanc on 127.0.0.1 (its own storage, DICOM and HTTP ports); its REST base URL, DICOM port, AE title."""
    binary = orthanc_binary()
    if binary is None:
        pytest.skip("no Orthanc, and apt-get cannot install it here (not root, or no apt-get)")
    folder = tmp_path_factory.mktemp("orthanc")
    dicom_port, http_port = free_port(), free_port()
    config = {
        "Name": "xvertnet-test",
        "StorageDirectory": str(folder / "db"),
        "IndexDirectory": str(folder / "db"),
        "DicomAet": "ORTHANC",
        "DicomPort": dicom_port,
        "HttpPort": http_port,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomCheckCalledAet": False,
        "Plugins": [],
    }
    (folder / "orthanc.json").write_text(json.dumps(config))
    log = open(folder / "orthanc.log", "w")
    process = subprocess.Popen([binary, str(folder / "orthanc.json")], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{http_port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"{base}/system", timeout=2).read()
            break
        except OSError:
            time.sleep(0.3)
    else:
        process.kill()
        pytest.skip(f"Orthanc did not start: {(folder / 'orthanc.log').read_text()[-500:]}")
    yield {"base": base, "port": dicom_port, "ae_title": "ORTHANC"}
    process.terminate()
    process.wait(timeout=30)
    log.close()


def rest(base: str, path: str):
    return json.loads(urllib.request.urlopen(f"{base}{path}", timeout=10).read())


def start_node(
    tmp_path: Path, name: str, destination: dict, client_tls=None, **settings
) -> tuple[subprocess.Popen, dict]:
    """``xvertnet serve`` in a subprocess (its own queue folder); returns the process and its settings. ``client_tls``:
    the client's TLS context for the start-up probe of a node with TLS."""
    port = free_port()
    node = {
        "ae_title": "XVERTNET",
        "port": port,
        "queue": str(tmp_path / f"{name}-queue"),
        "destinations": [{"ae_title": destination["ae_title"], "host": "127.0.0.1", "port": destination["port"]}],
        "retries": 1,
        "backoff_s": 0.2,
        "device": "cpu",
        **settings,
    }
    config = tmp_path / f"{name}.yaml"
    config.write_text(yaml.safe_dump(node))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]))
    log = open(tmp_path / f"{name}.log", "a")
    process = subprocess.Popen(
        [sys.executable, "-m", "xvertnet", "serve", "--config", str(config)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.time() + 120
    probe = (settings.get("allowed_callers") or ["SCU"])[0]
    while time.time() < deadline and process.poll() is None:
        if echo(port, ae_title=probe, tls=client_tls) == 0x0000:
            return process, node
        time.sleep(0.5)
    process.kill()
    raise AssertionError(f"the node did not start: {(tmp_path / f'{name}.log').read_text()[-2000:]}")


def echo(port: int, ae_title: str = "SCU", tls=None) -> int | None:
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification

    ae = AE(ae_title=ae_title)
    ae.add_requested_context(Verification)
    ae.acse_timeout = ae.network_timeout = 5
    assoc = ae.associate("127.0.0.1", port, ae_title="XVERTNET", tls_args=(tls, "127.0.0.1") if tls else None)
    if not assoc.is_established:
        return None
    status = assoc.send_c_echo()
    assoc.release()
    return getattr(status, "Status", None)


def send(port: int, dataset, ae_title: str = "SCU", tls=None) -> int | None:
    """C-STORE one data set; its status, or None when no association or context was accepted."""
    from pynetdicom import AE

    ae = AE(ae_title=ae_title)
    ae.add_requested_context(dataset.SOPClassUID, dataset.file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", port, ae_title="XVERTNET", tls_args=(tls, "127.0.0.1") if tls else None)
    if not assoc.is_established:
        return None
    try:
        status = assoc.send_c_store(dataset)
    except ValueError:  # no accepted presentation context for the SOP class
        status = None
    finally:
        assoc.release()
    return getattr(status, "Status", None)


def rg1(uid_suffix: str = ""):
    dataset = pydicom.dcmread(real_radiograph_path())
    if uid_suffix:  # another instance of the same series (the node keys its queue by SOP Instance UID)
        dataset.SOPInstanceUID = f"{dataset.SOPInstanceUID}.{uid_suffix}"
        dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    return dataset


def siim():
    """A real CR as a PACS stores it: JPEG baseline, 8 bits, secondary capture (tests/data/real_cxr/README.md)."""
    return pydicom.dcmread(REPO / "tests" / "data" / "real_cxr" / "siim_pa_1024_8bit.dcm")


def derived_instances(base: str) -> list:
    """The xvertnet-derived instances Orthanc holds, as the files it stores (read back through its REST API)."""
    from io import BytesIO

    found = []
    for instance in rest(base, "/instances"):
        tags = rest(base, f"/instances/{instance}/simplified-tags")
        if "xvertnet" in tags.get("Manufacturer", ""):
            data = urllib.request.urlopen(f"{base}/instances/{instance}/file", timeout=30).read()
            found.append(pydicom.dcmread(BytesIO(data)))
    return found


def wait_for(predicate, timeout: float = 180.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(1.0)
    return predicate()


def test_an_image_sent_to_the_node_arrives_enhanced_in_the_pacs(orthanc, tmp_path):
    """RG1 (uncompressed, 15 bits, MONOCHROME1) and the SIIM image (JPEG baseline, 8 bits, secondary capture)."""
    process, node = start_node(tmp_path, "node", orthanc)
    sources = [rg1(), siim()]
    assert sources[1].file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.50"
    try:
        for source in sources:
            assert send(node["port"], source) == 0x0000
        found = wait_for(lambda: len(derived_instances(orthanc["base"])) == 2 and derived_instances(orthanc["base"]))
        assert found and len(found) == 2, (tmp_path / "node.log").read_text()[-2000:]
        by_source = {derived.SourceImageSequence[0].ReferencedSOPInstanceUID: derived for derived in found}
        for source in sources:
            derived = by_source[source.SOPInstanceUID]
            assert derived.PatientID == source.PatientID and derived.StudyInstanceUID == source.StudyInstanceUID
            assert derived.SeriesInstanceUID != source.SeriesInstanceUID
            assert list(derived.ImageType)[0] == "DERIVED" and "model_sha256" in derived.DerivationDescription
            assert (derived.Rows, derived.Columns) == (source.Rows, source.Columns)  # native resolution
            assert derived.pixel_array.std() > 0
        assert not list(Path(node["queue"], "incoming").glob("*.dcm"))  # delivered: nothing left queued
    finally:
        process.terminate()
        process.wait(timeout=60)
    source = sources[0]
    log = (tmp_path / "node.log").read_text()
    name = str(source.get("PatientName", ""))
    assert "Traceback" not in log and (not name or name not in log)  # identifiers, not names


def test_the_node_refuses_strangers_other_classes_and_oversized_instances(orthanc, tmp_path):
    process, node = start_node(tmp_path, "strict", orthanc, allowed_callers=["MODALITY"], max_bytes=1000)
    try:
        assert echo(node["port"], ae_title="STRANGER") is None  # association rejected
        assert echo(node["port"], ae_title="MODALITY") == 0x0000
        ct = rg1("9")
        ct.SOPClassUID = pydicom.uid.CTImageStorage  # not a radiograph: its presentation context is refused
        assert send(node["port"], ct, ae_title="MODALITY") is None
        assert send(node["port"], rg1("8"), ae_title="MODALITY") == 0xA700  # above max_bytes
    finally:
        process.terminate()
        process.wait(timeout=60)
    log = (tmp_path / "strict.log").read_text()
    assert "calling AE title not in allowed_callers" in log and "above max_bytes 1000" in log
    assert f"refused SOP class {pydicom.uid.CTImageStorage} from MODALITY@127.0.0.1: not a radiograph" in log
    assert "Traceback" not in log


def test_acknowledged_images_survive_a_sigkill_and_are_delivered_after_the_restart(orthanc, tmp_path):
    nowhere = {"ae_title": "NOWHERE", "port": free_port()}  # the destination is down: images stay queued
    process, node = start_node(tmp_path, "killed", nowhere, retries=50, backoff_s=5.0)
    sources = [rg1("101"), rg1("102")]
    before = len(derived_instances(orthanc["base"]))
    for source in sources:
        assert send(node["port"], source) == 0x0000
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    queued = sorted(path.stem for path in Path(node["queue"], "incoming").glob("*.dcm"))
    assert queued == sorted(str(source.SOPInstanceUID) for source in sources)
    node_settings = {k: v for k, v in node.items() if k not in ("ae_title", "port", "queue", "destinations")}
    node_settings["queue"] = node["queue"]
    restarted, _ = start_node(tmp_path, "killed", orthanc, **node_settings)
    try:
        assert wait_for(lambda: len(derived_instances(orthanc["base"])) - before >= 2)
        assert not list(Path(node["queue"], "incoming").glob("*.dcm"))
    finally:
        restarted.terminate()
        restarted.wait(timeout=60)


def test_bad_node_settings_are_one_line(tmp_path, capsys):
    from command_line import run_cli

    config = tmp_path / "node.yaml"
    config.write_text(
        yaml.safe_dump({"ae_title": "X" * 20, "destinations": [{"ae_title": "PACS", "host": "h", "port": 1}]})
    )
    code, message = run_cli(capsys, "serve", "--config", config)
    assert code == 2 and "AE title" in message
    config.write_text(yaml.safe_dump({"ae_title": "XV"}))
    code, message = run_cli(capsys, "serve", "--config", config)
    assert code == 2 and "destination" in message
    config.write_text(yaml.safe_dump({"colour": "red", "destinations": [{"ae_title": "PACS", "host": "h", "port": 1}]}))
    code, message = run_cli(capsys, "serve", "--config", config)
    assert code == 2 and "colour" in message


def test_the_node_accepts_exactly_the_transfer_syntaxes_it_can_decode():
    from pydicom.pixels import get_decoder
    from pynetdicom import DEFAULT_TRANSFER_SYNTAXES

    from xvertnet.serving.dicom_node import accepted_transfer_syntaxes

    accepted = accepted_transfer_syntaxes()
    assert set(DEFAULT_TRANSFER_SYNTAXES) <= set(accepted)
    assert "1.2.840.10008.1.2.4.50" in accepted  # JPEG baseline: Pillow decodes it
    for uid in ("1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.70"):  # JPEG-LS, JPEG lossless: only with a plugin
        assert (uid in accepted) == get_decoder(uid).is_available


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key (openssl), or a skip where there is no openssl."""
    if not shutil.which("openssl"):
        pytest.skip("no openssl to make a test certificate")
    certificate, key = folder / "node.pem", folder / "node.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(certificate)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return certificate, key


def test_with_tls_the_node_takes_images_over_tls_only(orthanc, tmp_path):
    import ssl

    certificate, key = self_signed(tmp_path)
    client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(certificate))
    process, node = start_node(
        tmp_path, "tls", orthanc, client_tls=client, tls_certificate=str(certificate), tls_key=str(key), workers=2
    )
    try:
        assert echo(node["port"], tls=client) == 0x0000
        assert send(node["port"], siim(), tls=client) == 0x0000  # acknowledged: queued on disk
        assert echo(node["port"]) is None  # plain TCP: no association
        assert send(node["port"], siim()) is None
        untrusting = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)  # the system CAs do not know this node
        assert echo(node["port"], tls=untrusting) is None
    finally:
        process.terminate()
        process.wait(timeout=60)
    log = (tmp_path / "tls.log").read_text()
    assert "(TLS); 2 worker(s)" in log and "Traceback" not in log


def test_several_workers_deliver_each_image_once(tmp_path):
    """Four images through a node with three workers into a pynetdicom sink: each delivered exactly once."""
    from pynetdicom import AE, evt
    from pynetdicom.sop_class import ComputedRadiographyImageStorage

    received = []
    sink = AE(ae_title="SINK")
    sink.add_supported_context(ComputedRadiographyImageStorage)
    sink_port = free_port()

    def keep(event):
        received.append(str(event.dataset.SOPInstanceUID))
        return 0x0000

    server = sink.start_server(("127.0.0.1", sink_port), block=False, evt_handlers=[(evt.EVT_C_STORE, keep)])
    process, node = start_node(tmp_path, "workers", {"ae_title": "SINK", "port": sink_port}, workers=3)
    try:
        sources = [rg1(str(index)) for index in range(4)]
        for source in sources:
            pixels = source.pixel_array[:256, :256].copy()  # small, to keep the test short
            source.Rows, source.Columns = 256, 256
            source.PixelData = pixels.tobytes()
            assert send(node["port"], source) == 0x0000
        failed = Path(node["queue"], "failed")
        wait_for(lambda: len(received) >= 4 or any(failed.glob("*.dcm")), timeout=240)
        assert len(received) >= 4, (tmp_path / "workers.log").read_text()[-2000:]
        time.sleep(2)  # nothing more arrives
    finally:
        process.terminate()
        process.wait(timeout=60)
        server.shutdown()
    assert len(received) == 4 and len(set(received)) == 4
