"""A DICOM node: receive chest radiographs, enhance them, send the derived images on (``xvertnet serve``).

A site's processing nodes speak DICOM on the network: a modality or the PACS's routing rule sends
an image to the node (C-STORE), the node stores a derived image back. This one:

1. **Accepts** C-ECHO and C-STORE of radiograph storage classes only (:data:`RADIOGRAPH_STORAGE`:
   CR, DX for presentation and for processing, secondary capture), from callers on the allow-list
   (calling AE titles and addresses; empty lists allow any). Another SOP class is refused at
   association (its presentation context is rejected), a caller not on the list is rejected or
   aborted, an instance above ``max_bytes`` is answered 0xA700 (out of resources) and one that
   cannot be decoded 0xC210 (cannot understand), each with one log line naming the SOP Instance
   UID and the caller, never the patient.
2. **Queues before it acknowledges**: each accepted instance is written to ``queue/incoming``
   under its SOP Instance UID, flushed to disk and renamed into place, before success is
   answered. An acknowledged image survives a crash or a SIGKILL.
3. **Enhances** it with the configured model set (the shipped one by default) as ``xvertnet
   enhance`` does, at native resolution, into a derived image: the same patient and study, a new
   series, the derivation recorded (:func:`xvertnet.io.writers.write_derived_dicom`). The derived
   series and instance UIDs are derived from the source's and the model set's hashes, so an
   image sent twice (after a restart) is the same instance.
4. **Sends** it by C-STORE to every destination, retrying with exponential backoff
   (``retries``, ``backoff_s``). Delivered: the queue entry is removed. Not deliverable after the
   last retry, or not enhanceable: the source goes to ``queue/failed`` with a one-line reason
   beside it, and the node goes on.
5. **Resumes** after a restart: whatever is in ``queue/incoming`` is processed first.

``workers`` threads share the loaded model set and take the queued images oldest first, each image by one worker.
With ``tls_certificate`` and ``tls_key`` the node speaks DICOM over TLS only (``tls_ca``: callers must present a
certificate that CA signed). Settings: one YAML file (:class:`NodeSettings`), checked at start with one-line errors.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from pathlib import Path
from typing import ClassVar

from xvertnet.errors import ConfigError, XvertnetError
from xvertnet.settings import FromConfig

log = logging.getLogger(__name__)

#: The storage SOP classes of chest radiographs the node accepts.
RADIOGRAPH_STORAGE = {
    "1.2.840.10008.5.1.4.1.1.1": "CR Image Storage",
    "1.2.840.10008.5.1.4.1.1.1.1": "Digital X-Ray Image Storage - For Presentation",
    "1.2.840.10008.5.1.4.1.1.1.1.1": "Digital X-Ray Image Storage - For Processing",
    "1.2.840.10008.5.1.4.1.1.7": "Secondary Capture Image Storage",
}
#: DIMSE statuses the node answers.
SUCCESS, OUT_OF_RESOURCES, CANNOT_UNDERSTAND = 0x0000, 0xA700, 0xC210


def accepted_transfer_syntaxes() -> list[str]:
    """The transfer syntaxes the node accepts: the uncompressed ones, and every compressed one that an installed
    pydicom decoder can read (JPEG baseline and extended through Pillow, JPEG 2000 and RLE where their plugins are
    installed), so that a PACS sending its stored JPEGs is not refused and nothing is accepted that cannot be read."""
    from pydicom.pixels import get_decoder
    from pynetdicom import ALL_TRANSFER_SYNTAXES, DEFAULT_TRANSFER_SYNTAXES

    compressed = []
    for uid in ALL_TRANSFER_SYNTAXES:
        if uid in DEFAULT_TRANSFER_SYNTAXES:
            continue
        try:
            if get_decoder(uid).is_available:
                compressed.append(uid)
        except NotImplementedError:  # no pixel decoder at all for this syntax (e.g. video, referenced pixel data)
            continue
    return [*DEFAULT_TRANSFER_SYNTAXES, *compressed]


@dataclasses.dataclass(frozen=True)
class Destination:
    ae_title: str
    host: str
    port: int


@dataclasses.dataclass(frozen=True)
class NodeSettings(FromConfig):
    """The node's settings (one YAML file; module docstring)."""

    SECTION: ClassVar[str] = "node"

    ae_title: str = "XVERTNET"
    bind: str = "127.0.0.1"
    port: int = 11112
    #: Calling AE titles and IP addresses allowed to associate (empty: any).
    allowed_callers: tuple[str, ...] = ()
    allowed_addresses: tuple[str, ...] = ()
    destinations: tuple[Destination, ...] = ()
    #: A model folder (iter1, iter2, ...) or "" for the model set shipped in the package.
    model: str = ""
    queue: str = "xvertnet-queue"
    max_bytes: int = 200_000_000
    retries: int = 5
    backoff_s: float = 2.0
    device: str = "auto"
    #: Images enhanced and sent at once (threads sharing one loaded model set).
    workers: int = 1
    #: TLS on the node's port (DICOM over TLS, as DICOM PS3.15 describes it): a PEM certificate and its key. With
    #: ``tls_ca`` too, a caller must present a certificate signed by that CA (mutual TLS). Empty: plain TCP.
    tls_certificate: str = ""
    tls_key: str = ""
    tls_ca: str = ""

    @classmethod
    def from_config(cls, section: dict | None) -> NodeSettings:
        section = dict(section or {})
        if "destinations" in section:
            try:
                section["destinations"] = tuple(Destination(**entry) for entry in section["destinations"] or ())
            except TypeError as error:
                raise ConfigError("node.destinations", f"each needs ae_title, host and port ({error})") from None
        return super().from_config(section)

    def __post_init__(self):
        for key, title in [("ae_title", self.ae_title), *(("destinations", d.ae_title) for d in self.destinations)]:
            if not (isinstance(title, str) and 0 < len(title.strip()) <= 16 and title.isascii() and "\\" not in title):
                raise ConfigError(
                    f"node.{key}", f"an AE title is 1-16 ASCII characters without a backslash, got {title!r}"
                )
        for key, port in [("port", self.port), *(("destinations", d.port) for d in self.destinations)]:
            if not (isinstance(port, int) and 0 < port < 65536):
                raise ConfigError(f"node.{key}", f"a port is 1-65535, got {port!r}")
        if not self.destinations:
            raise ConfigError("node.destinations", "at least one destination (ae_title, host, port) is needed")
        if self.max_bytes <= 0 or self.retries < 0 or self.backoff_s < 0:
            raise ConfigError("node", "max_bytes must be positive, retries and backoff_s not negative")
        if not (isinstance(self.workers, int) and 1 <= self.workers <= 64):
            raise ConfigError("node.workers", f"1 to 64 threads, got {self.workers!r}")
        if bool(self.tls_certificate) != bool(self.tls_key) or (self.tls_ca and not self.tls_certificate):
            raise ConfigError(
                "node.tls_certificate", "TLS needs both tls_certificate and tls_key (tls_ca only with them)"
            )
        for key in ("tls_certificate", "tls_key", "tls_ca"):
            value = getattr(self, key)
            if value and not Path(value).is_file():
                raise ConfigError(f"node.{key}", f"{value}: no such file")

    def ssl_context(self):
        """The server side's TLS context, or None without TLS (one-line errors for a bad certificate or key)."""
        if not self.tls_certificate:
            return None
        import ssl

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(self.tls_certificate, self.tls_key)
            if self.tls_ca:
                context.load_verify_locations(self.tls_ca)
                context.verify_mode = ssl.CERT_REQUIRED
        except (ssl.SSLError, OSError) as error:
            raise ConfigError("node.tls_certificate", f"cannot use the certificate or key ({error})") from None
        return context


def load_settings(path) -> NodeSettings:
    """The node's settings from a YAML file (one-line errors for a missing or malformed file)."""
    import yaml

    path = Path(path)
    try:
        section = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(str(path), f"cannot read the node settings ({' '.join(str(error).split())})") from None
    if not isinstance(section, dict):
        raise ConfigError(str(path), "the node settings must be a mapping of keys (ae_title, port, destinations, ...)")
    return NodeSettings.from_config(section)


def derived_uids(dataset, model_hashes) -> tuple[str, str]:
    """The derived series' and instance's UIDs: fixed by the source's and the model set's, so a resent image is the
    same instance (the source series maps to one derived series)."""
    from pydicom.uid import generate_uid

    models = "|".join(model_hashes)
    series = generate_uid(entropy_srcs=[str(dataset.SeriesInstanceUID), "xvertnet", models])
    instance = generate_uid(entropy_srcs=[str(dataset.SOPInstanceUID), "xvertnet", models])
    return series, instance


class Node:
    """The running node: a Storage SCP that queues, and a worker that enhances and forwards (module docstring)."""

    def __init__(self, settings: NodeSettings):
        self.settings = settings
        root = Path(settings.queue)
        self.incoming, self.failed, self.outgoing = root / "incoming", root / "failed", root / "outgoing"
        for folder in (self.incoming, self.failed, self.outgoing):
            folder.mkdir(parents=True, exist_ok=True)
        self._stop = threading.Event()
        self._work = threading.Event()
        self._server = None
        self._workers: list[threading.Thread] = []
        self._claims_lock = threading.Lock()
        self._claimed: set[Path] = set()
        self.chain = None

    # -- receiving ---------------------------------------------------------------------------------------------------
    def start(self, *, block: bool = False) -> None:
        from pynetdicom import AE, evt
        from pynetdicom.sop_class import Verification

        from xvertnet.model.inference import Chain
        from xvertnet.model.whole_image import model_dirs

        # the library's own lines (a refused association, a failed connection) are logged here, one line each, as ours
        logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)
        self.chain = Chain(
            model_dirs(Path(self.settings.model) if self.settings.model else None), device=self.settings.device
        )
        ae = AE(ae_title=self.settings.ae_title)
        ae.maximum_pdu_size = 0
        ae.add_supported_context(Verification)
        syntaxes = accepted_transfer_syntaxes()
        for uid in RADIOGRAPH_STORAGE:
            ae.add_supported_context(uid, syntaxes)
        if self.settings.allowed_callers:
            ae.require_calling_aet = list(self.settings.allowed_callers)
        handlers = [(evt.EVT_C_STORE, self._store), (evt.EVT_CONN_OPEN, self._check_address),
                    (evt.EVT_REJECTED, self._rejected), (evt.EVT_ACCEPTED, self._refused_classes)]  # fmt: skip
        ssl_context = self.settings.ssl_context()
        self._workers = [
            threading.Thread(target=self._run_worker, name=f"xvertnet-node-worker-{index}", daemon=True)
            for index in range(self.settings.workers)
        ]
        for worker in self._workers:
            worker.start()
        log.info(
            "listening as %s on %s:%d%s; %d worker(s); queue %s; %d image(s) waiting from before",
            self.settings.ae_title,
            self.settings.bind,
            self.settings.port,
            " (TLS)" if ssl_context else "",
            self.settings.workers,
            self.settings.queue,
            len(list(self.incoming.glob("*.dcm"))),
        )
        self._server = ae.start_server(
            (self.settings.bind, self.settings.port), block=block, evt_handlers=handlers, ssl_context=ssl_context
        )

    def stop(self) -> None:
        self._stop.set()
        self._work.set()
        if self._server is not None:
            self._server.shutdown()
        for worker in self._workers:
            worker.join(timeout=60)

    def _check_address(self, event) -> None:
        address = event.address[0]
        if self.settings.allowed_addresses and address not in self.settings.allowed_addresses:
            log.warning("refused a connection from %s: not in allowed_addresses", address)
            event.assoc.abort()

    @staticmethod
    def _rejected(event) -> None:
        requestor = event.assoc.requestor
        log.warning(
            "rejected an association from %s (%s): calling AE title not in allowed_callers",
            requestor.ae_title,
            requestor.address,
        )

    @staticmethod
    def _refused_classes(event) -> None:
        requestor = event.assoc.requestor
        for context in event.assoc.rejected_contexts:
            log.warning(
                "refused SOP class %s from %s@%s: not a radiograph storage class (its presentation context rejected)",
                context.abstract_syntax,
                requestor.ae_title,
                requestor.address,
            )

    def _store(self, event) -> int:
        """Queue one instance durably, then answer (module docstring, steps 1-2)."""
        caller = f"{event.assoc.requestor.ae_title}@{event.assoc.requestor.address}"
        size = len(event.request.DataSet.getvalue())
        if size > self.settings.max_bytes:
            log.warning(
                "refused an instance from %s: %d bytes, above max_bytes %d", caller, size, self.settings.max_bytes
            )
            return OUT_OF_RESOURCES
        try:
            dataset = event.dataset
            dataset.file_meta = event.file_meta
            uid = str(dataset.SOPInstanceUID)
        except Exception as error:  # noqa: BLE001 - any decoding failure of a peer's bytes is answered, not raised
            log.warning("refused an instance from %s: cannot decode it (%s)", caller, " ".join(str(error).split()))
            return CANNOT_UNDERSTAND
        if not uid or "/" in uid or uid.startswith("."):
            log.warning("refused an instance from %s: no usable SOP Instance UID", caller)
            return CANNOT_UNDERSTAND
        target = self.incoming / f"{uid}.dcm"
        partial = self.incoming / f".{uid}.partial"
        with open(partial, "wb") as handle:
            dataset.save_as(handle, enforce_file_format=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, target)
        _sync_folder(self.incoming)
        log.info("queued %s from %s (%d bytes)", uid, caller, size)
        self._work.set()
        return SUCCESS

    # -- enhancing and sending ---------------------------------------------------------------------------------------
    def _claim(self) -> Path | None:
        """The oldest queued instance no other worker has taken, now taken by this one; None when there is none."""
        with self._claims_lock:
            pending = []
            for path in self.incoming.glob("*.dcm"):
                try:
                    pending.append((path.stat().st_mtime, path))
                except FileNotFoundError:  # delivered by another worker meanwhile
                    continue
            for _, path in sorted(pending):
                if path not in self._claimed:
                    self._claimed.add(path)
                    return path
        return None

    def _run_worker(self) -> None:
        while not self._stop.is_set():
            path = self._claim()
            if path is None:
                self._work.wait(timeout=1.0)
                self._work.clear()
                continue
            try:
                self.process(path)
            finally:
                with self._claims_lock:
                    self._claimed.discard(path)

    def process(self, path: Path) -> bool:
        """Enhance one queued instance and deliver it; True when delivered. A failure moves it to ``failed`` with its
        reason (one line, also logged)."""
        uid = path.stem
        try:
            derived = self.enhance(path)
        except (XvertnetError, OSError, ValueError) as error:
            return self._fail(path, f"not enhanced: {' '.join(str(error).split())}")
        for destination in self.settings.destinations:
            reason = self.send(derived, destination)
            if reason is not None:
                return self._fail(
                    path, f"not delivered to {destination.ae_title}@{destination.host}:{destination.port}: {reason}"
                )
        derived.unlink(missing_ok=True)
        path.unlink(missing_ok=True)
        log.info("delivered the enhanced %s to %d destination(s)", uid, len(self.settings.destinations))
        return True

    def enhance(self, path: Path) -> Path:
        """The derived instance of a queued one, in ``outgoing`` (written once; reused when a restart resends it)."""
        import pydicom

        from xvertnet.io.atomic import atomic_path
        from xvertnet.io.readers import flat_image_reason, read_image
        from xvertnet.io.writers import write_derived_dicom
        from xvertnet.model.whole_image import enhance_image

        dataset = pydicom.dcmread(path, stop_before_pixels=True)
        series, instance = derived_uids(dataset, self.chain.describe()["model_sha256"])
        out = self.outgoing / f"{instance}.dcm"
        if out.is_file():
            return out
        image = read_image(path).pixels
        flat = flat_image_reason(image)
        if flat:
            raise XvertnetError(f"{flat}, nothing to enhance")
        enhanced, description = enhance_image(self.chain, image)
        with atomic_path(out) as tmp:
            write_derived_dicom(path, enhanced, tmp, description, uids=(series, instance))
        return out

    def send(self, path: Path, destination: Destination) -> str | None:
        """C-STORE one file to a destination with retries and exponential backoff; None when stored, else the reason."""
        import pydicom
        from pynetdicom import AE

        dataset = pydicom.dcmread(path)
        reason = "no attempt"
        for attempt in range(self.settings.retries + 1):
            if attempt:
                self._stop.wait(self.settings.backoff_s * 2 ** (attempt - 1))
                if self._stop.is_set():
                    return "the node is stopping"
            ae = AE(ae_title=self.settings.ae_title)
            ae.add_requested_context(dataset.SOPClassUID, dataset.file_meta.TransferSyntaxUID)
            assoc = ae.associate(destination.host, destination.port, ae_title=destination.ae_title)
            if not assoc.is_established:
                reason = "association not established (refused, or nothing listening)"
                continue
            try:
                status = assoc.send_c_store(dataset)
            finally:
                assoc.release()
            code = getattr(status, "Status", None)
            if code is not None and (code == SUCCESS or 0xB000 <= code <= 0xBFFF):
                return None
            reason = f"C-STORE status 0x{code:04X}" if code is not None else "no C-STORE response"
        return reason

    def _fail(self, path: Path, reason: str) -> bool:
        target = self.failed / path.name
        os.replace(path, target)
        (self.failed / f"{path.stem}.reason.txt").write_text(reason + "\n")
        log.warning("%s: %s (kept in %s)", path.stem, reason, self.failed)
        return False


def _sync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (the folder's entry, not only the file's data)."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def serve_forever(settings: NodeSettings) -> None:
    """Run the node until SIGTERM or SIGINT."""
    import signal

    node = Node(settings)
    stopped = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopped.set())
    node.start(block=False)
    try:
        while not stopped.wait(0.5):
            pass
    finally:
        node.stop()
        time.sleep(0.1)
