"""The data pipeline: sources, split, caching, fixed validation tokens, errors, bits per byte."""

import json
import logging
import math
import socket
from pathlib import Path

import numpy as np
import pytest

from sweep.config import DataConfig, TokenizerConfig
from sweep.run.data import (
    STDLIB_EXCLUDED_DIRS,
    DataError,
    Document,
    TokenData,
    bits_per_byte,
    corpus_hash,
    hub_load_kwargs,
    load_documents,
    load_tokenizer,
    prepare_data,
    python_files,
    split_documents,
    stdlib_files,
    token_dtype,
    write_dir_atomically,
)
from sweep.run.tokenizer import EOT_ID

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="module")
def shakespeare():
    path = SHARED / "tinyshakespeare.txt"
    if not path.is_file():
        pytest.skip(f"{path} missing")
    return path.read_text(encoding="utf-8")


@pytest.fixture
def corpus(tmp_path, shakespeare):
    """The first 150 kB of tiny Shakespeare as 60 document files in a folder."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    speeches = shakespeare[:150_000].split("\n\n")
    per = math.ceil(len(speeches) / 60)
    for i in range(60):
        (folder / f"doc{i:03d}.txt").write_text("\n\n".join(speeches[i * per:(i + 1) * per]), encoding="utf-8")
    return folder


def files_config(path, tmp_path, **kw):
    return DataConfig(source="files", path=str(path), cache_dir=str(tmp_path / "cache"), **{"val_tokens": 2000, **kw})


BPE = TokenizerConfig(kind="bpe", vocab_size=400)
BYTE = TokenizerConfig(kind="byte", vocab_size=256)


def no_network(*args, **kwargs):
    raise OSError("network access in an offline test")


def split_on_eot(ids):
    out, cur = [], []
    for i in ids:
        if i == EOT_ID:
            out.append(cur)
            cur = []
        else:
            cur.append(int(i))
    return out, cur


def test_prepare_encodes_every_train_document_and_a_fixed_validation_prefix(corpus, tmp_path):
    data = files_config(corpus, tmp_path, val_fraction=0.2)
    td = prepare_data(data, BPE, progress=False)
    tok = load_tokenizer(td)
    docs = load_documents(data)
    train, val = split_documents(docs, data.val_fraction, data.split_seed)

    assert td.vocab_size == 400 and td.dtype == "uint16" and tok.vocab_size == 400
    assert td.n_val_tokens == 2000 and len(td.val_tokens()) == 2000
    assert td.n_train_tokens == len(td.train_tokens()) > 10_000
    assert td.train_tokens().dtype == np.uint16
    assert td.corpus_hash == corpus_hash(docs)

    # train.bin is exactly the train documents, each followed by the boundary id.
    pieces, rest = split_on_eot(td.train_tokens())
    assert rest == [] and [tok.decode(p) for p in pieces] == [d.text for d in train]
    # val.bin is the start of the validation stream: whole documents, then a cut-off one.
    pieces, rest = split_on_eot(td.val_tokens())
    assert [tok.decode(p) for p in pieces] == [d.text for d in val[:len(pieces)]]
    assert val[len(pieces)].text.encode("utf-8").startswith(tok.decode(rest).rstrip("\ufffd").encode("utf-8"))

    meta = td.meta()
    assert meta["n_documents_train"] + meta["n_documents_val"] == meta["n_documents"] == 60
    assert meta["n_documents_val_used"] == len(pieces) + 1
    assert meta["tokenizer"]["vocab_size"] == 400 and meta["data"]["val_tokens"] == 2000
    # val_bytes: UTF-8 bytes of the validation tokens, one byte per boundary.
    whole = sum(len(d.text.encode("utf-8")) + 1 for d in val[:len(pieces)])
    assert whole < td.val_bytes <= whole + len(val[len(pieces)].text.encode("utf-8"))
    assert td.val_bytes == tok.token_bytes()[np.asarray(td.val_tokens())].sum()


def test_second_prepare_is_a_cache_hit(corpus, tmp_path, caplog):
    data = files_config(corpus, tmp_path)
    first = prepare_data(data, BPE, progress=False)
    tok_file = next((tmp_path / "cache").glob("tokenizer-*.json"))
    stamps = {p: p.stat().st_mtime_ns for p in [tok_file, *first.dir.iterdir()]}
    with caplog.at_level(logging.INFO, logger="sweep.run.token_cache"):
        second = prepare_data(data, BPE, progress=False)
    assert second == first
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert "token cache hit by fingerprint (corpus not read)" in caplog.text  # not even the tokenizer is loaded
    assert "training BPE" not in caplog.text and "encoding" not in caplog.text
    assert not list((tmp_path / "cache").glob(".tmp-*"))


def test_same_config_gives_identical_tokens_in_another_cache(corpus, tmp_path):
    a = prepare_data(files_config(corpus, tmp_path / "a"), BPE, progress=False)
    b = prepare_data(files_config(corpus, tmp_path / "b"), BPE, progress=False)
    assert a.dir != b.dir and a.dir.name == b.dir.name
    assert a.tokenizer_hash == b.tokenizer_hash
    assert np.array_equal(a.val_tokens(), b.val_tokens())
    assert (a.dir / "train.bin").read_bytes() == (b.dir / "train.bin").read_bytes()


def test_changed_corpus_gets_a_new_cache(corpus, tmp_path):
    data = files_config(corpus, tmp_path)
    before = prepare_data(data, BYTE, progress=False)
    bpe_before = prepare_data(data, BPE, progress=False)
    with open(corpus / "doc007.txt", "a", encoding="utf-8") as f:
        f.write("\nAn extra line.")
    after = prepare_data(data, BYTE, progress=False)
    bpe_after = prepare_data(data, BPE, progress=False)
    assert after.corpus_hash != before.corpus_hash and after.dir != before.dir
    assert bpe_after.dir != bpe_before.dir
    assert len(list((tmp_path / "cache").glob("tokenizer-*.json"))) == 2  # retrained for the new corpus
    assert before.dir.is_dir()  # the old cache is left alone


def test_split_is_deterministic_order_free_and_seeded():
    docs = [Document(f"d{i}", f"document number {i}\n" * (i % 7 + 1)) for i in range(2000)]
    train, val = split_documents(docs, 0.1, 0)
    names = lambda ds: {d.name for d in ds}
    assert split_documents(docs, 0.1, 0) == (train, val)
    assert names(train) | names(val) == names(docs) and not names(train) & names(val)
    assert 150 < len(val) < 250  # 10% of 2000, binomial sd 13
    r_train, r_val = split_documents(docs[::-1], 0.1, 0)
    assert names(r_train) == names(train) and r_val == val  # validation order does not depend on file order
    assert [d.name for d in r_train] == [d.name for d in train][::-1]
    other = split_documents(docs, 0.1, 1)[1]
    assert names(other) != names(val)
    # The validation order is the same prefix for a larger fraction.
    assert split_documents(docs, 0.3, 0)[1][:len(val)] == val


def test_byte_tokens_and_bits_per_byte(corpus, tmp_path):
    data = files_config(corpus, tmp_path)
    td = prepare_data(data, BYTE, progress=False)
    assert td.vocab_size == 256 and td.dtype == "uint16"
    val = split_documents(load_documents(data), data.val_fraction, data.split_seed)[1]
    stream = b"".join(d.text.encode("utf-8") + b"\0" for d in val)
    assert bytes(td.val_tokens().tolist()) == stream[:2000]
    assert td.val_bytes == td.n_val_tokens == 2000  # one byte per token, boundaries included
    assert td.bits_per_byte(math.log(2)) == pytest.approx(1.0)
    assert td.bits_per_byte(1.0) == pytest.approx(1 / math.log(2))


def test_bits_per_byte_hand_example():
    # 100 tokens at 2 nats each = 200 nats = 288.539 bits over 400 bytes = 0.72135 bits/byte.
    assert bits_per_byte(2.0, 100, 400) == pytest.approx(200 / math.log(2) / 400)
    assert bits_per_byte(2.0, 100, 400) == pytest.approx(0.721348, abs=1e-6)
    td = TokenData(dir=Path("."), n_train_tokens=1, n_val_tokens=1000, val_bytes=3500, vocab_size=2048,
                   corpus_hash="", tokenizer_hash="", dtype="uint16")
    assert td.bits_per_byte(3.5 * math.log(2)) == pytest.approx(1.0)


def test_token_dtype_switches_above_uint16():
    assert token_dtype(256) == "uint16" and token_dtype(65536) == "uint16" and token_dtype(65537) == "uint32"


def test_single_text_file_is_split_into_paragraphs(shakespeare, tmp_path):
    path = tmp_path / "play.txt"
    path.write_text(shakespeare[:20_000], encoding="utf-8")
    docs = load_documents(files_config(path, tmp_path))
    assert len(docs) > 50
    assert docs[0] == Document("play.txt#0", shakespeare[:20_000].split("\n\n")[0])
    assert all(d.name.startswith("play.txt#") and "\n\n" not in d.text for d in docs)


def test_jsonl_with_a_text_field(tmp_path, monkeypatch):
    monkeypatch.setattr(socket.socket, "connect", no_network)
    path = tmp_path / "records.jsonl"
    rows = [{"id": i, "content": f"record {i} — ünïcode {'x' * i}"} for i in range(40)] + [{"id": 40, "content": ""}]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    docs = load_documents(files_config(path, tmp_path, text_field="content"))
    assert [d.text for d in docs] == [r["content"] for r in rows[:40]]  # the empty record is skipped
    assert docs[3].name == "records.jsonl#3"
    with pytest.raises(DataError, match=r"data.text_field='text'.*\['id', 'content'\]"):
        load_documents(files_config(path, tmp_path))


def test_max_bytes_takes_whole_documents_in_order(corpus, tmp_path):
    all_docs = load_documents(files_config(corpus, tmp_path))
    size = lambda ds: sum(len(d.text.encode("utf-8")) for d in ds)
    cap = size(all_docs[:5]) + 10
    docs = load_documents(files_config(corpus, tmp_path, max_bytes=cap))
    assert docs == all_docs[:5]


def test_stdlib_corpus_excludes_tests_and_loads_offline(tmp_path, monkeypatch):
    names = [n for n, _ in stdlib_files()]
    assert len(names) > 300 and names == sorted(names)
    assert "json/decoder.py" in names and "asyncio/base_events.py" in names
    assert not [n for n in names if set(n.split("/")[:-1]) & STDLIB_EXCLUDED_DIRS]
    assert not [n for n in names if n.startswith(("test/", "idlelib/idle_test/", "lib2to3/tests/"))]
    assert not [n for n in names if "sysconfigdata" in n or n.startswith("config-")]  # machine-specific

    monkeypatch.setattr(socket.socket, "connect", no_network)
    data = DataConfig(source="stdlib", max_bytes=1_000_000, val_fraction=0.3, val_tokens=1000,
                      cache_dir=str(tmp_path / "cache"))
    td = prepare_data(data, TokenizerConfig(kind="bpe", vocab_size=512), progress=False)
    docs = load_documents(data)
    # A prefix of the files in name order (empty files skipped), within the byte cap.
    kept = [n for n, p in stdlib_files() if p.stat().st_size > 0]
    assert [d.name for d in docs] == kept[:len(docs)]
    assert 10 < len(docs) < len(kept) and td.meta()["corpus_bytes"] <= 1_000_000
    assert td.meta()["n_documents"] == len(docs)
    assert load_tokenizer(td).decode(td.val_tokens()[:50])  # decodes to text


def test_hub_source_streams_once_with_the_right_arguments(tmp_path):
    calls = []

    def fake_load_dataset(**kwargs):
        # The one allowed mock: tests have no network, so this stands in for datasets.load_dataset.
        calls.append(kwargs)
        return iter([{"text": f"Once upon a time, story {i:03d}. " * 20, "id": i} for i in range(200)])

    data = DataConfig(source="hub", path="roneneldan/TinyStories", hub_config=None, hub_split="train",
                      max_bytes=40_000, val_tokens=500, cache_dir=str(tmp_path / "cache"))
    td = prepare_data(data, BYTE, progress=False, load_dataset=fake_load_dataset)
    assert calls == [{"path": "roneneldan/TinyStories", "name": None, "split": "train", "streaming": True}]
    assert hub_load_kwargs(data) == calls[0]
    assert td.meta()["n_documents"] == 40_000 // 580  # whole 580-byte stories, within max_bytes
    assert load_tokenizer(td).decode(td.val_tokens()[:24]) == "Once upon a time, story "

    def offline(**kwargs):
        raise AssertionError("the snapshot should make the hub unnecessary")

    assert prepare_data(data, BYTE, progress=False, load_dataset=offline) == td


def test_hub_source_without_the_text_field_fails(tmp_path):
    data = DataConfig(source="hub", path="some/set", text_field="story", cache_dir=str(tmp_path / "cache"))
    with pytest.raises(DataError, match=r"data.text_field='story'.*\['text'\]"):
        prepare_data(data, BYTE, progress=False, load_dataset=lambda **kw: iter([{"text": "hi"}]))
    assert not list((tmp_path / "cache").glob("hub-*"))  # no half-written snapshot


# ---------------------------------------------------------------------------------------------
# Errors: each names what is wrong and how to fix it


def test_missing_path(tmp_path):
    with pytest.raises(DataError, match=r"data.path=.*does not exist"):
        load_documents(files_config(tmp_path / "nope", tmp_path))


def test_empty_corpus(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    with pytest.raises(DataError, match="corpus is empty"):
        load_documents(files_config(folder, tmp_path))
    (folder / "a.txt").write_text("")
    with pytest.raises(DataError, match="corpus is empty"):
        load_documents(files_config(folder, tmp_path))


def test_binary_file_is_named(corpus, tmp_path):
    (corpus / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(DataError, match=r"image.png looks binary.*remove it"):
        load_documents(files_config(corpus, tmp_path))


def test_non_utf8_file_is_named(corpus, tmp_path):
    (corpus / "latin1.txt").write_bytes("café crème".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1.txt is not UTF-8.*offset 3.*convert it"):
        load_documents(files_config(corpus, tmp_path))


def test_validation_split_too_short(corpus, tmp_path):
    with pytest.raises(DataError, match=r"data.val_tokens=10000000.*lower data.val_tokens or raise data.val_fraction"):
        prepare_data(files_config(corpus, tmp_path, val_tokens=10_000_000), BYTE, progress=False)
    assert not list((tmp_path / "cache").glob("tokens-*")) and not list((tmp_path / "cache").glob(".tmp-*"))


def test_vocab_too_large_for_corpus(tmp_path):
    (tmp_path / "c").mkdir()
    for i in range(30):
        (tmp_path / "c" / f"{i}.txt").write_text(f"tiny document {i}")
    with pytest.raises(DataError, match=r"tokenizer.vocab_size=4096 .*vocab_size <= \d+"):
        prepare_data(files_config(tmp_path / "c", tmp_path, val_tokens=5), TokenizerConfig(vocab_size=4096), progress=False)


def test_tampered_cache_fails_clearly(corpus, tmp_path):
    data = files_config(corpus, tmp_path)
    td = prepare_data(data, BYTE, progress=False)
    meta = json.loads((td.dir / "meta.json").read_text())
    meta["corpus_hash"] = "0" * 64
    (td.dir / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match=r"does not match its key.*delete the folder"):
        prepare_data(data, BYTE, progress=False)
    (td.dir / "meta.json").write_text("{trunc")
    with pytest.raises(DataError, match="unreadable"):
        prepare_data(data, BYTE, progress=False)


def test_atomic_write_loser_keeps_the_winner_and_crash_leaves_nothing(tmp_path):
    final = tmp_path / "tokens-abc"
    final.mkdir()
    (final / "meta.json").write_text("winner")
    write_dir_atomically(final, lambda tmp: (tmp / "meta.json").write_text("loser"))
    assert (final / "meta.json").read_text() == "winner"

    def crash(tmp):
        (tmp / "train.bin").write_bytes(b"half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        write_dir_atomically(tmp_path / "tokens-def", crash)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tokens-abc"]


def test_tail_split_holds_out_the_end_of_the_text():
    from sweep.run.data import Document, split_documents

    docs = [Document(name=f"d{i}", text="x" * 10) for i in range(10)]
    train, val = split_documents(docs, 0.1, split_seed=0, how="tail")
    assert [d.name for d in train] == [f"d{i}" for i in range(9)]
    assert [d.name for d in val] == ["d9"]
    # one document (nanoGPT's single text file) is cut inside, at the character
    train, val = split_documents([Document(name="all", text="abcdefghij" * 10)], 0.15, split_seed=0, how="tail")
    assert "".join(d.text for d in train) == ("abcdefghij" * 10)[:85]
    assert "".join(d.text for d in val) == ("abcdefghij" * 10)[85:]


def test_a_cache_hit_reads_no_corpus_and_a_touched_file_is_hashed_again(tmp_path, monkeypatch):
    import os

    import sweep.run.token_cache as data_mod
    from sweep.config import DataConfig, TokenizerConfig

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(20):
        (corpus / f"doc{i}.txt").write_text(f"document {i} " * 200)
    cfg = DataConfig(source="files", path=str(corpus), val_tokens=512, cache_dir=str(tmp_path / "cache"))
    tok = TokenizerConfig(kind="byte", vocab_size=256)
    first = data_mod.prepare_data(cfg, tok, progress=False)
    passes = []  # documents read by each pass over the corpus
    real = data_mod.stream_documents

    def counting(*a, **k):
        passes.append(0)
        for doc in real(*a, **k):
            passes[-1] += 1
            yield doc

    monkeypatch.setattr(data_mod, "stream_documents", counting)
    again = data_mod.prepare_data(cfg, tok, progress=False)
    assert passes == [] and again.dir == first.dir and again.corpus_hash == first.corpus_hash
    # same bytes, new modification time: read and hashed again (one pass), and the same token files found by content
    st = (corpus / "doc3.txt").stat()
    os.utime(corpus / "doc3.txt", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    touched = data_mod.prepare_data(cfg, tok, progress=False)
    assert [n for n in passes if n] == [20] and touched.dir == first.dir
    # new content: another corpus hash, other token files (encoded by further passes)
    (corpus / "doc3.txt").write_text("something else entirely " * 100)
    passes.clear()
    changed = data_mod.prepare_data(cfg, tok, progress=False)
    assert passes[0] == 20 and len([n for n in passes if n]) >= 2
    assert changed.corpus_hash != first.corpus_hash and changed.dir != first.dir


def test_streamed_paragraphs_are_the_split_of_the_whole_text():
    """A single-file corpus is cut at blank lines while it is read in pieces; wherever the pieces end (inside a
    break, between \\r and \\n), the documents are those of splitting the whole text at once."""
    import random
    import re

    from sweep.run.data import paragraphs

    rng = random.Random(0)
    for _ in range(2000):
        text = "".join(rng.choice(["a", "b", " ", "\n", "\r", "\r\n", "\n\n"]) for _ in range(rng.randint(0, 60)))
        whole = [(f"f#{i}", p) for i, p in enumerate(re.split(r"(?:\r?\n){2,}", text)) if p.strip()]
        cuts = sorted(rng.sample(range(len(text) + 1), min(len(text) + 1, rng.randint(0, 6))))
        pieces = [text[a:b] for a, b in zip([0] + cuts, cuts + [len(text)])]
        assert [(d.name, d.text) for d in paragraphs("f", pieces)] == whole, (text, pieces)


@pytest.mark.parametrize("split", ["documents", "tail"])
def test_small_reads_and_batches_build_the_same_token_files(tmp_path, monkeypatch, split):
    """The build streams: files in pieces, encoding in batches, validation text grown until it fills the
    validation tokens. Pieces of 1 kB, batches of 4 kB and one byte of validation text per token at first give
    the very files the defaults give."""
    import sweep.run.documents as documents_mod
    import sweep.run.encode as encode_mod
    import sweep.run.token_cache as cache_mod
    from conftest import SHAKESPEARE

    def build(cache):
        cfg = DataConfig(source="files", path=str(SHAKESPEARE), cache_dir=str(tmp_path / cache), val_tokens=4096,
                         split=split)
        td = prepare_data(cfg, BPE, progress=False)
        meta = {k: v for k, v in td.meta().items() if k.startswith("n_") or k.endswith(("_bytes", "_hash"))}
        return (td.dir / "train.bin").read_bytes(), (td.dir / "val.bin").read_bytes(), meta

    reference = build("defaults")
    monkeypatch.setattr(documents_mod, "READ_CHUNK_BYTES", 1000)
    monkeypatch.setattr(encode_mod, "ENCODE_BATCH_BYTES", 4000)
    monkeypatch.setattr(cache_mod, "VAL_BYTES_PER_TOKEN", 1)
    assert build("small") == reference
    assert reference[2]["n_documents"] > 100 if split == "documents" else reference[2]["n_documents"] == 1


def test_long_documents_are_encoded_in_pieces_with_the_ids_of_the_whole():
    import random

    from sweep.run.data import pieces
    from sweep.run.tokenizer import train_bpe
    from conftest import SHAKESPEARE

    # code with CRLF, tabs and trailing spaces, often enough that BPE learns merges across newlines and spaces
    bpe = train_bpe([SHAKESPEARE.read_text()[:100_000], "def f(x):\r\n\treturn x  \n\n  # done \n" * 2000], 600)
    rng = random.Random(0)
    words = ["the", " king", "\n", "\r\n", "  ", "\t", "x", "'s", "42", "!", " \n", "\n\n", "é", "def", ":"]
    for _ in range(300):
        text = "".join(rng.choice(words) for _ in range(rng.randint(1, 200)))
        cut = list(pieces(text, rng.randint(1, 40)))
        assert "".join(p for p, _ in cut) == text and [last for _, last in cut][-1]
        ids = [i for p, _ in cut for i in bpe.encode_batch([p])[0]]
        assert ids == bpe.encode_batch([text])[0], (text, cut)


def test_python_source_reads_the_stdlib_then_a_site_packages_without_tests_or_metadata(tmp_path):
    """data.source=python: the stdlib's files, then site-packages' .py files in name order; test suites, bytecode,
    metadata folders, non-.py files and this package are not read. A cache hit is found by their stats, and a
    changed package changes the corpus hash."""
    site = tmp_path / "site-packages"
    files = {
        "alpha/__init__.py": "",  # empty: no document
        "alpha/core.py": "def f(x):\n    return x + 1\n" * 300,
        "alpha/tests/test_core.py": "assert f(1) == 2\n",
        "alpha/testing/fixtures.py": "FIXTURE = 1\n",
        "alpha/__pycache__/core.cpython-311.py": "junk\n",
        "alpha-1.0.dist-info/METADATA.py": "Name: alpha\n",
        "beta.py": "import alpha\nprint(alpha)\n" * 300,
        "beta.txt": "not python\n",
        "sweep/cli.py": "def main():\n    pass\n",
    }
    for name, text in files.items():
        (site / name).parent.mkdir(parents=True, exist_ok=True)
        (site / name).write_text(text)
    found = python_files(site)
    names = [n for n, _ in found]
    assert names[-2:] == ["site-packages/alpha/core.py", "site-packages/beta.py"]
    assert names[:-3] == ["stdlib/" + n for n, _ in stdlib_files()] and names[-3] == "site-packages/alpha/__init__.py"
    cfg = DataConfig(source="python", path=str(site), cache_dir=str(tmp_path / "cache"), val_tokens=512)
    docs = load_documents(cfg)
    assert [d.name for d in docs][-2:] == ["site-packages/alpha/core.py", "site-packages/beta.py"]
    assert len(docs) == len(found) - 1 - sum(1 for n, p in found if n.startswith("stdlib/") and not p.read_text())
    first = prepare_data(cfg, BYTE, progress=False)
    assert first.n_train_tokens + first.n_val_tokens > 10_000_000  # the stdlib alone is ~12 MB of bytes
    (site / "beta.py").write_text("import alpha\nprint(alpha, 2)\n" * 300)
    assert prepare_data(cfg, BYTE, progress=False).corpus_hash != first.corpus_hash
    with pytest.raises(DataError, match="data.path=.*no such folder"):
        load_documents(DataConfig(source="python", path=str(tmp_path / "nowhere")))
    # data.packages: only those top-level names (a package folder or a module), whatever else is installed
    assert [n for n, _ in python_files(site, ["beta"])][-1] == "site-packages/beta.py"
    assert not any(n.startswith("site-packages/alpha") for n, _ in python_files(site, ["beta"]))
    assert [n for n, _ in python_files(site, ["alpha"])][-2:] == ["site-packages/alpha/__init__.py",
                                                                  "site-packages/alpha/core.py"]
    with pytest.raises(DataError, match=r"data.packages: \['gamma'\] not installed"):
        python_files(site, ["alpha", "gamma"])


def test_tinyshakespeare_ships_with_the_package_and_reads_from_any_folder(tmp_path, monkeypatch):
    """data=tinyshakespeare from a fresh clone or an installed wheel: no ../shared, no network."""
    from sweep.cli import load_run_config
    from sweep.run.corpus import resolve_path

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(socket, "create_connection", no_network)
    cfg = load_run_config(["data=tinyshakespeare", "tokenizer=byte", f"data.cache_dir={tmp_path / 'cache'}"])
    assert cfg.data.path == "pkg:tinyshakespeare.txt"  # the same path, and run ids, in every install
    shipped = resolve_path(cfg.data.path)
    assert shipped.stat().st_size == 1_115_394
    if (SHARED / "tinyshakespeare.txt").is_file():
        assert shipped.read_bytes() == (SHARED / "tinyshakespeare.txt").read_bytes()
    td = prepare_data(cfg.data, cfg.tokenizer, progress=False)
    assert td.n_train_tokens + td.n_val_tokens > 1_000_000
