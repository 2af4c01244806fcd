"""Tokenizers: exact round trips, the reserved end-of-text id, BPE determinism and size limits."""

from pathlib import Path

import numpy as np
import pytest

from sweep.run.tokenizer import (
    EOT,
    EOT_ID,
    ByteTokenizer,
    TokenizerError,
    bytes_to_unicode,
    read_tokenizer_file,
    save_tokenizer,
    tokenizer_from_str,
    tokenizer_hash,
    train_bpe,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
ODD_TEXT = "naïve café — 日本語 😀\ttabs\r\nCRLF  double  spaces\x7f and <|endoftext|> literally"


@pytest.fixture(scope="module")
def shakespeare_texts():
    path = SHARED / "tinyshakespeare.txt"
    if not path.is_file():
        pytest.skip(f"{path} missing")
    text = path.read_text(encoding="utf-8")[:200_000]
    return text.split("\n\n")


@pytest.fixture(scope="module")
def bpe(shakespeare_texts):
    return train_bpe(shakespeare_texts, 512)


def test_byte_tokenizer_round_trip_is_utf8_bytes():
    tok = ByteTokenizer()
    ids = tok.encode(ODD_TEXT)
    assert ids == list(ODD_TEXT.encode("utf-8"))
    assert len(ids) > len(ODD_TEXT)  # multi-byte characters became several tokens
    assert tok.decode(ids) == ODD_TEXT
    assert [list(a) for a in tok.encode_batch(["é", "ab"])] == [[0xC3, 0xA9], [97, 98]]
    assert tok.vocab_size == 256 and tok.eot_id == 0
    assert tokenizer_hash(tok) == tokenizer_hash(tokenizer_from_str("byte"))


def test_byte_decode_of_a_cut_character_does_not_fail():
    ids = ByteTokenizer().encode("aé")[:-1]
    assert ByteTokenizer().decode(ids) == "a\ufffd"


def test_bpe_round_trip_on_unseen_non_ascii_text(bpe):
    assert bpe.vocab_size == 512
    ids = bpe.encode(ODD_TEXT)
    assert bpe.decode(ids) == ODD_TEXT
    assert max(ids) < 512
    # A literal "<|endoftext|>" inside a document is text: only the pipeline inserts id 0.
    assert EOT_ID not in ids
    assert bpe.decode([EOT_ID]) == EOT
    # BPE compresses English it was trained on.
    line = "First Citizen:\nBefore we proceed any further, hear me speak."
    assert len(bpe.encode(line)) < 0.6 * len(line.encode("utf-8"))


def test_bpe_batch_matches_single(bpe):
    texts = ["hello there", ODD_TEXT, "", "ROMEO:\nBut soft!"]
    assert bpe.encode_batch(texts) == [bpe.encode(t) for t in texts]


def test_bpe_token_bytes_count_utf8_bytes(bpe):
    table = bpe.token_bytes()
    ids = bpe.encode(ODD_TEXT)
    assert table[ids].sum() == len(ODD_TEXT.encode("utf-8"))
    assert table[EOT_ID] == 1
    assert (table[1:] >= 1).all()


def test_byte_level_alphabet_matches_tokenizers():
    from tokenizers import pre_tokenizers

    mapping = bytes_to_unicode()
    assert len(mapping) == 256 and len(set(mapping.values())) == 256
    assert set(mapping.values()) == set(pre_tokenizers.ByteLevel.alphabet())


def test_bpe_training_is_deterministic_and_serializes(shakespeare_texts, bpe, tmp_path):
    again = train_bpe(shakespeare_texts, 512)
    assert tokenizer_hash(again) == tokenizer_hash(bpe)
    path = tmp_path / "tok.json"
    save_tokenizer(bpe, path)
    loaded = read_tokenizer_file(path)
    assert tokenizer_hash(loaded) == tokenizer_hash(bpe)
    assert loaded.encode(ODD_TEXT) == bpe.encode(ODD_TEXT)
    assert EOT_ID not in loaded.encode(EOT)  # the setting survives a reload
    assert read_tokenizer_file(tmp_path / "missing.json") is None


def test_bpe_vocab_larger_than_corpus_supports_names_the_maximum():
    texts = ["abab abab", "cdcd"]
    with pytest.raises(TokenizerError, match=r"tokenizer.vocab_size=5000") as err:
        train_bpe(texts, 5000)
    most = int(str(err.value).split("vocab_size <= ")[1].split(",")[0])
    assert 257 < most < 300
    assert train_bpe(texts, most).vocab_size == most


def test_token_bytes_of_byte_tokenizer():
    assert np.array_equal(ByteTokenizer().token_bytes(), np.ones(256))
