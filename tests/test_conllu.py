"""The CoNLL-U reader: multiword tokens and empty nodes skipped without shifting words or heads."""

from __future__ import annotations

from pathlib import Path

import pytest

from bertsecrets_cli.data.conllu import read_conllu
from bertsecrets_cli.errors import InputError

# Spanish-style multiword token "del" = "de" + "el", and an enhanced-graph empty node 3.1
SAMPLE = """# newdoc id = test
# sent_id = s1
# text = Vengo del mercado.
1	Vengo	venir	VERB	_	_	0	root	0:root	_
2-3	del	_	_	_	_	_	_	_	_
2	de	de	ADP	_	_	4	case	4:case	_
3	el	el	DET	_	_	4	det	4:det	_
3.1	ido	ir	VERB	_	_	_	_	1:conj	_
4	mercado	mercado	NOUN	_	_	1	obl	1:obl	SpaceAfter=No
5	.	.	PUNCT	_	_	1	punct	1:punct	_

# sent_id = s2
1	They	they	PRON	_	_	2	nsubj	_	_
2	left	leave	VERB	_	_	0	root	_	_
3	early	early	ADV	_	_	2	advmod	_	_
"""


def write(tmp_path: Path, text: str, name: str = "t.conllu") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_multiword_tokens_and_empty_nodes_are_skipped_and_heads_still_line_up(tmp_path: Path) -> None:
    s1, s2 = list(read_conllu(write(tmp_path, SAMPLE)))
    assert [w.form for w in s1.words] == ["Vengo", "de", "el", "mercado", "."]
    assert [w.head for w in s1.words] == [0, 4, 4, 1, 1]
    # every head still names the intended word: 'de' and 'el' attach to 'mercado'
    assert s1.words[s1.words[1].head - 1].form == "mercado"
    assert [w.deprel for w in s1.words] == ["root", "case", "det", "obl", "punct"]
    assert s1.id == "s1" and s1.text == "Vengo del mercado." and s1.line == 1  # its comments included
    assert s2.id == "s2" and [w.form for w in s2.words] == ["They", "left", "early"]  # no trailing blank line needed


def test_sentence_without_sent_id_is_named_by_file_and_line(tmp_path: Path) -> None:
    (s,) = list(read_conllu(write(tmp_path, "\n\n1\tHi\thi\tINTJ\t_\t_\t0\troot\t_\t_\n")))
    assert s.id == "t.conllu:3" and s.text is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("1\tA\ta\tX\t_\t_\t0\troot\t_\n", r"t.conllu:1: expected 10 tab-separated fields, found 9"),
        ("1 A a X _ _ 0 root _ _\n", r"t.conllu:1: .*separated by tabs"),
        ("1\tA\ta\tX\t_\t_\t0\troot\t_\t_\n3\tB\tb\tX\t_\t_\t1\tdep\t_\t_\n", r"t.conllu:2: word ID 3 out of order \(expected 2\)"),
        ("1\tA\ta\tX\t_\t_\tzero\troot\t_\t_\n", r"t.conllu:1: HEAD 'zero' is not a word number"),
        ("1\tA\ta\tX\t_\t_\t0\troot\t_\t_\n2\tB\tb\tX\t_\t_\t7\tdep\t_\t_\n\n", r"t.conllu:2: HEAD 7 points past the sentence's 2 words"),
        ("1\tA\ta\tX\t_\t_\t1\troot\t_\t_\n", r"t.conllu:1: word 1 is its own HEAD"),
        ("x\tA\ta\tX\t_\t_\t0\troot\t_\t_\n", r"t.conllu:1: ID 'x' is not a word number"),
    ],
)
def test_malformed_lines_are_input_errors_naming_file_and_line(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        list(read_conllu(write(tmp_path, body)))


def test_line_numbers_count_comments_and_skipped_lines(tmp_path: Path) -> None:
    bad = SAMPLE.replace("5\t.\t.\tPUNCT\t_\t_\t1\tpunct", "5\t.\t.\tPUNCT\t_\t_\t9\tpunct")
    with pytest.raises(InputError, match=r"t.conllu:10: HEAD 9"):
        list(read_conllu(write(tmp_path, bad)))


def test_missing_file_and_non_utf8_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        list(read_conllu(tmp_path / "nope.conllu"))
    p = tmp_path / "latin1.conllu"
    p.write_bytes("1\tcaf\xe9\tx\tX\t_\t_\t0\troot\t_\t_\n".encode("latin-1"))
    with pytest.raises(InputError, match="not UTF-8"):
        list(read_conllu(p))
