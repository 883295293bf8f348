import dataclasses
import functools
import http.server
import json
import re
import shutil
import threading

import pytest
from helpers import invoke_cli, run_cli

from ftcot import data
from ftcot.errors import UserError
from ftcot.fetch import fetch

SMALL_PATHS = (
    "raw/coin_flip/coin_flip.json",
    "splits/coin_flip__default.json",
    "few_shot_cot_prompts.json",
    "teacher/text-davinci-002__zs_cot/coin_flip.jsonl",
)


@pytest.fixture(scope="module")
def small(data_dir):
    """Four data files as fetch knows them, with the synthetic files' checksums in place of the published ones."""
    return tuple(
        dataclasses.replace(data.DATA_FILES_BY_PATH[p], sha256=data.sha256_of(data_dir / p)) for p in SMALL_PATHS
    )


class CountingHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.requests.append(self.path)
        if self.server.drop and self.path.endswith(self.server.drop):
            # Promise the whole body, send half, then drop the connection.
            body = (self.server.root / self.path.lstrip("/")).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(2)
            self.close_connection = True
            return
        super().do_GET()


@pytest.fixture
def serve():
    servers = []

    def start(root, drop=None):
        server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(CountingHandler, directory=str(root))
        )
        server.requests, server.root, server.drop = [], root, drop
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}", server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_fetch_from_http_mirror_verifies_and_skips_verified_files(data_dir, small, tmp_path, serve):
    url, server = serve(data_dir)
    outcomes = fetch(tmp_path, url, files=small)
    assert set(outcomes.values()) == {"fetched"} and len(server.requests) == len(small)
    for file in small:
        assert data.sha256_of(tmp_path / file.path) == file.sha256
    # A second run asks for nothing: every file is already there and verified.
    assert set(fetch(tmp_path, url, files=small).values()) == {"verified"}
    assert len(server.requests) == len(small)
    assert not list(tmp_path.rglob("*.part"))


def test_corrupted_file_is_a_clear_error_and_leaves_nothing_behind(data_dir, small, tmp_path, serve):
    mirror = tmp_path / "mirror"
    shutil.copytree(data_dir / "raw" / "coin_flip", mirror / "raw" / "coin_flip")
    target = mirror / "raw" / "coin_flip" / "coin_flip.json"
    target.write_bytes(target.read_bytes().replace(b"heads up", b"tails up", 1))
    url, _ = serve(mirror)
    dest = tmp_path / "data"
    outcome = fetch(dest, url, files=small[:1])["raw/coin_flip/coin_flip.json"]
    assert re.match(r"failed: checksum mismatch for raw/coin_flip/coin_flip\.json", outcome)
    assert [p for p in dest.rglob("*") if p.is_file()] == []


def test_dropped_connection_is_retried_then_reported(data_dir, small, tmp_path, serve):
    url, server = serve(data_dir, drop="coin_flip.json")
    outcome = fetch(tmp_path, url, files=small[:1])["raw/coin_flip/coin_flip.json"]
    assert re.match(r"failed: cannot fetch .*coin_flip\.json: .* \(after 3 attempts\)", outcome)
    assert server.requests == ["/raw/coin_flip/coin_flip.json"] * 3
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_fetch_from_local_folder_and_missing_files(shared_data, tmp_path):
    outcomes = fetch(tmp_path, str(shared_data))
    assert outcomes["raw/AQuA/train.json"].startswith("missing at source")
    assert all(o == "fetched" for p, o in outcomes.items() if p != "raw/AQuA/train.json")
    assert all(data.is_verified(f, tmp_path) for f in data.DATA_FILES if f.path != "raw/AQuA/train.json")
    with pytest.raises(UserError, match=r"missing data file .*raw/AQuA/train\.json: .*google-deepmind/AQuA"):
        data.data_path("raw/AQuA/train.json", tmp_path)


def test_every_file_has_a_public_source_or_names_its_origin():
    for file in data.DATA_FILES:
        assert (file.url or "").startswith("https://raw.githubusercontent.com/") or file.origin.startswith(
            "parsed from https://raw.githubusercontent.com/kojima-takeshi188/zero_shot_cot/"
        )
        assert file.sha256 is not None or file.path == "raw/AQuA/train.json"


AQUA_TRAIN = data.DATA_FILES_BY_PATH["raw/AQuA/train.json"]


def test_a_git_blob_id_is_gits_own(data_dir):
    import subprocess

    path = data_dir / "raw" / "coin_flip" / "coin_flip.json"
    git = subprocess.run(["git", "hash-object", str(path)], capture_output=True, text=True, check=True)
    assert data.digests(path) == (data.sha256_of(path), git.stdout.strip())


def test_aqua_train_is_verified_by_its_git_blob_id_and_a_corrupted_one_leaves_nothing(tmp_path, serve):
    mirror = tmp_path / "mirror" / "raw" / "AQuA"
    mirror.mkdir(parents=True)
    (mirror / "train.json").write_text('{"question": "not the real AQuA train", "correct": "A"}\n')
    url, _ = serve(tmp_path / "mirror")
    outcome = fetch(tmp_path / "data", url, files=(AQUA_TRAIN,))["raw/AQuA/train.json"]
    assert outcome.startswith(
        f"failed: checksum mismatch for raw/AQuA/train.json from {url}/raw/AQuA/train.json: "
        f"expected git blob {AQUA_TRAIN.git_blob}, got "
    )
    assert [p for p in (tmp_path / "data").rglob("*") if p.is_file()] == []
    # The same bytes under their own blob id are fetched: the blob id is what is checked.
    theirs = dataclasses.replace(AQUA_TRAIN, git_blob=data.digests(mirror / "train.json")[1])
    assert fetch(tmp_path / "data", url, files=(theirs,)) == {"raw/AQuA/train.json": "fetched"}
    assert (tmp_path / "data" / "raw" / "AQuA" / "train.json").read_bytes() == (mirror / "train.json").read_bytes()


@pytest.mark.parametrize("target", ["/etc/passwd", "outside/train.json"])
def test_a_local_sources_link_out_of_it_is_refused_and_leaves_nothing(tmp_path, target):
    outside = tmp_path / "outside" / "train.json"
    outside.parent.mkdir()
    outside.write_text('{"question": "q", "correct": "A"}\n')
    target = tmp_path / target  # an absolute one stays itself
    link = tmp_path / "mirror" / "raw" / "AQuA" / "train.json"
    link.parent.mkdir(parents=True)
    link.symlink_to(target)
    theirs = dataclasses.replace(AQUA_TRAIN, git_blob=data.digests(target)[1])  # the content would pass
    result = fetch(tmp_path / "data", str(tmp_path / "mirror"), files=(theirs,))
    assert result == {
        "raw/AQuA/train.json": f"failed: {link} is a link to {target.resolve()}, outside the source "
        f"folder {tmp_path / 'mirror'}: not copied"
    }
    assert [p for p in (tmp_path / "data").rglob("*") if p.is_file()] == []
    # A link that stays inside the source folder is followed.
    inside = tmp_path / "mirror" / "elsewhere.json"
    inside.write_bytes(target.read_bytes())
    link.unlink()
    link.symlink_to("../../elsewhere.json")
    assert fetch(tmp_path / "data", str(tmp_path / "mirror"), files=(theirs,)) == {"raw/AQuA/train.json": "fetched"}


def test_fetch_command_names_a_refused_aqua_train_in_one_line(tmp_path):
    link = tmp_path / "mirror" / "raw" / "AQuA" / "train.json"
    link.parent.mkdir(parents=True)
    link.symlink_to("/etc/passwd")
    result = invoke_cli("data", "fetch", "--to", tmp_path / "data", "--source", tmp_path / "mirror")
    assert result.returncode == 2 and re.fullmatch(r"error: [^\n]+\n", result.stderr), result.stderr
    named = [line for line in result.stdout.splitlines() if "raw/AQuA/train.json" in line]
    assert len(named) == 1 and "is a link to /etc/passwd, outside the source folder" in named[0], result.stdout
    assert [p for p in (tmp_path / "data").rglob("*") if p.is_file()] == []


def test_data_verify_checks_aqua_train_where_present(tmp_path):
    root = tmp_path / "data"
    (root / "raw" / "AQuA").mkdir(parents=True)
    absent = invoke_cli("data", "verify", "--data-dir", root)
    assert absent.returncode == 0 and "missing  raw/AQuA/train.json" in absent.stdout
    (root / "raw" / "AQuA" / "train.json").write_text('{"question": "q", "correct": "A"}\n')
    present = invoke_cli("data", "verify", "--data-dir", root)
    assert present.returncode == 2 and "BAD  raw/AQuA/train.json" in present.stdout
    assert re.fullmatch(
        r"error: 1 data file\(s\) in .* fail their checksum, e.g. raw/AQuA/train\.json\n", present.stderr
    )


def test_data_dir_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv("FTCOT_DATA_DIR", str(tmp_path / "env"))
    assert data.data_dir() == tmp_path / "env"
    assert data.data_dir(tmp_path / "flag") == tmp_path / "flag"
    monkeypatch.delenv("FTCOT_DATA_DIR")
    assert str(data.data_dir()).endswith(".cache/ftcot/data")


def _mirror_without_the_first(root, files, mirror):
    for file in files[1:]:  # the mirror lacks the first file: the server answers 404
        (mirror / file.path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(root / file.path, mirror / file.path)
    return mirror


def test_fetch_goes_on_past_missing_files(data_dir, small, tmp_path, serve):
    url, _ = serve(_mirror_without_the_first(data_dir, small, tmp_path / "mirror"))
    outcomes = fetch(tmp_path / "data", url, files=small)
    assert outcomes[small[0].path] == f"missing at source: {url}/{small[0].path}"
    assert [outcomes[f.path] for f in small[1:]] == ["fetched"] * 3
    assert all((tmp_path / "data" / f.path).is_file() for f in small[1:])


def test_fetch_command_goes_on_past_missing_files_then_lists_them_and_fails(shared_data, tmp_path, serve):
    small = tuple(data.DATA_FILES_BY_PATH[p] for p in SMALL_PATHS)  # the published checksums, so the real files
    url, _ = serve(_mirror_without_the_first(shared_data, small, tmp_path / "mirror"))
    result = run_cli("data", "fetch", "--to", tmp_path / "all", "--source", url)
    assert result.returncode == 2 and "missing at source" in result.stdout
    assert re.fullmatch(r"error: \d+ file\(s\) could not be fetched .*\n", result.stderr)
    assert all((tmp_path / "all" / f.path).is_file() for f in small[1:])  # fetched although an earlier one was not


class RedirectLoop(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        self.send_response(302)
        self.send_header("Location", self.path)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.mark.parametrize("case", ["ftp", "redirect loop", "to a file", "no such folder", "bad URL", "no host"])
def test_fetch_mistakes_are_one_line_errors(case, data_dir, tmp_path):
    dest, source = tmp_path / "data", str(data_dir)
    server = None
    if case == "ftp":
        source = "ftp://example.com/data"
    elif case == "redirect loop":
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RedirectLoop)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        source = f"http://127.0.0.1:{server.server_port}"
    elif case == "to a file":
        dest.write_text("not a folder")
    elif case == "bad URL":
        source = "http://[::1"
    elif case == "no host":
        source = "http://"
    else:
        source = str(tmp_path / "nowhere")
    try:
        result = invoke_cli("data", "fetch", "--to", dest, "--source", source)
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert re.fullmatch(r"error: [^\n]+\n", result.stderr), result.stderr
    if case == "redirect loop":
        assert "redirect" in result.stderr.lower() and "could not be fetched" in result.stderr
    if case != "to a file":
        assert not [p for p in tmp_path.rglob("*") if p.is_file() and p.suffix == ".part"]


def test_parsing_a_kojima_style_log_reproduces_every_field_of_its_records(data_dir):
    """The parser on a synthetic log in Kojima's layout: records in the order of Kojima's DataLoader, one whose
    rationale holds the answer trigger (tests/minidata.py)."""
    from ftcot.teachers.kojima import parse_log

    text = (data_dir / "kojima_logs" / "coin_flip_zero_shot_cot.log").read_text(encoding="utf-8")
    records = [json.loads(line) for line in (data_dir / data.TEACHER_DIR / "coin_flip.jsonl").open(encoding="utf-8")]
    assert parse_log(text, "coin_flip", data_dir) == records
    assert sum(f" \n{r['answer_prompt']}" in r["reasoning_completion"] for r in records) == 1


def test_parsing_kojimas_logs_reproduces_every_field_of_every_shared_teacher_record(shared_data):
    from ftcot.teachers.kojima import parse_log

    for task, name in data.KOJIMA_LOG_NAMES.items():
        text = (shared_data / "kojima_logs" / f"{name}_zero_shot_cot.log").read_text(encoding="utf-8")
        shared = [
            json.loads(line) for line in (shared_data / data.TEACHER_DIR / f"{task}.jsonl").open(encoding="utf-8")
        ]
        assert parse_log(text, task, shared_data) == shared, task


def test_fetch_derives_the_teacher_files_from_the_logs_with_the_published_checksums(shared_data, tmp_path):
    mirror = tmp_path / "mirror"  # the shared folder without teacher/ (copied: a link out of it is refused)
    for part in ("raw", "splits", "kojima_logs", "mentor_kd"):
        shutil.copytree(shared_data / part, mirror / part)
    shutil.copy(shared_data / "few_shot_cot_prompts.json", mirror)
    result = run_cli("data", "fetch", "--to", tmp_path / "data", "--source", mirror)
    assert result.stdout.count("derived") == 12 and "58/59 files present and verified" in result.stdout
    assert result.returncode == 2 and "raw/AQuA/train.json: missing at source" in result.stderr  # never shared
    verify = run_cli("data", "verify", "--data-dir", tmp_path / "data")
    assert verify.returncode == 0 and "BAD" not in verify.stdout
    for task in data.KOJIMA_LOG_NAMES:
        path = f"{data.TEACHER_DIR}/{task}.jsonl"
        assert data.sha256_of(tmp_path / "data" / path) == data.DATA_FILES_BY_PATH[path].sha256


def test_the_dataloader_order_is_torchs_randperm_under_seed_1():
    """Kojima's log order: what a torch DataLoader with a generator seeded 1 yields (two draws for its base
    seed, then randperm), reproduced without torch's own code."""
    import torch

    from ftcot.teachers.kojima import loader_order

    for n in (1, 2, 7, 508, 2290):
        generator = torch.Generator().manual_seed(1)
        torch.empty((), dtype=torch.int64).random_(generator=generator)
        assert loader_order(n) == torch.randperm(n, generator=generator).tolist(), n
