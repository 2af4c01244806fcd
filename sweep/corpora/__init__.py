"""Small public-domain corpora shipped with the package (data.path=pkg:<file>), so they work offline from any
install: tinyshakespeare.txt (1,115,394 bytes, karpathy/char-rnn's, as nanoGPT's shakespeare_char uses it)."""
