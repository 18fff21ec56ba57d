"""The FrameNet 1.7 reader on small release folders written in the real XML layout."""

from __future__ import annotations

from pathlib import Path

import pytest

from bertsecrets_cli.data.framenet import FrameNetRelease
from bertsecrets_cli.errors import InputError

NS = 'xmlns="http://framenet.icsi.berkeley.edu" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'

FRAME_ABANDON = f"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<?xml-stylesheet type="text/xsl" href="frame.xsl"?>
<frame cBy="KmG" cDate="02/22/2001 12:04:20 PST Thu" name="Abandonment" ID="2031" {NS}>
    <definition>&lt;def-root&gt;An &lt;fen&gt;Agent&lt;/fen&gt; leaves behind a &lt;fen&gt;Theme&lt;/fen&gt;.&lt;/def-root&gt;</definition>
    <FE bgColor="FF0000" fgColor="FFFFFF" coreType="Core" cBy="KmG" cDate="10/27/2005" abbrev="Age" name="Agent" ID="12338">
        <definition>&lt;def-root&gt;The Agent.&lt;/def-root&gt;</definition>
        <semType name="Sentient" ID="5"/>
    </FE>
    <FE bgColor="0000FF" fgColor="FFFFFF" coreType="Core" cBy="KmG" cDate="10/27/2005" abbrev="The" name="Theme" ID="12339">
        <definition>&lt;def-root&gt;The Theme.&lt;/def-root&gt;</definition>
    </FE>
    <FE bgColor="00FF00" fgColor="000000" coreType="Peripheral" cBy="KmG" cDate="10/27/2005" abbrev="Pla" name="Place" ID="12340">
        <definition>&lt;def-root&gt;Where.&lt;/def-root&gt;</definition>
    </FE>
    <FE bgColor="00FFFF" fgColor="000000" coreType="Extra-Thematic" cBy="KmG" cDate="10/27/2005" abbrev="Exp" name="Explanation" ID="12341">
        <definition>&lt;def-root&gt;Why.&lt;/def-root&gt;</definition>
    </FE>
    <FEcoreSet>
        <memberFE name="Agent" ID="12338"/>
    </FEcoreSet>
    <frameRelation type="Inherits from"/>
    <lexUnit status="Finished_Initial" POS="V" name="abandon.v" ID="2" lemmaID="1">
        <definition>COD: leave.</definition>
        <sentenceCount annotated="3" total="3"/>
        <lexeme order="1" headword="false" breakBefore="false" POS="V" name="abandon" ID="1"/>
    </lexUnit>
</frame>
"""

FRAME_ARRIVING = f"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<frame cBy="ChW" cDate="05/11/2001" name="Arriving" ID="52" {NS}>
    <definition>&lt;def-root&gt;Arriving.&lt;/def-root&gt;</definition>
    <FE coreType="Core" name="Theme" ID="100" abbrev="Thm"><definition>x</definition></FE>
    <FE coreType="Core-Unexpressed" name="Goal" ID="101" abbrev="Goa"><definition>x</definition></FE>
    <FE coreType="Peripheral" name="Time" ID="102" abbrev="Tim"><definition>x</definition></FE>
</frame>
"""

# "The boys abandoned the old car near the river ."
#  0123456789012345678901234567890123456789012345678
FULLTEXT = f"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<fullTextAnnotation {NS}>
    <header>
        <corpus description="Test corpus" name="TEST" ID="1">
            <document description="A test document" name="doc1" ID="10"/>
        </corpus>
    </header>
    <sentence corpID="1" docID="10" sentNo="1" paragNo="1" aPos="0" ID="1001">
        <text>The boys abandoned the old car near the river .</text>
        <annotationSet cDate="11/17/2008" status="UNANN" ID="5001">
            <layer rank="1" name="PENN">
                <label end="2" start="0" name="dt"/>
                <label end="7" start="4" name="nns"/>
            </layer>
            <layer rank="1" name="NER"/>
            <layer rank="1" name="WSL"/>
        </annotationSet>
        <annotationSet cDate="11/17/2008" luID="2" luName="abandon.v" frameID="2031" frameName="Abandonment" status="MANUAL" ID="5002">
            <layer rank="1" name="Target">
                <label cBy="KmG" end="17" start="9" name="Target"/>
            </layer>
            <layer rank="1" name="FE">
                <label cBy="KmG" feID="12338" bgColor="FF0000" fgColor="FFFFFF" end="7" start="0" name="Agent"/>
                <label cBy="KmG" feID="12339" bgColor="0000FF" fgColor="FFFFFF" end="29" start="19" name="Theme"/>
                <label cBy="KmG" feID="12340" bgColor="00FF00" fgColor="000000" end="45" start="31" name="Place"/>
                <label cBy="KmG" feID="12341" itype="INI" name="Explanation"/>
            </layer>
            <layer rank="2" name="FE">
                <label cBy="KmG" feID="12339" end="29" start="23" name="Theme"/>
            </layer>
            <layer rank="1" name="GF">
                <label end="7" start="0" name="Ext"/>
                <label end="29" start="19" name="Obj"/>
            </layer>
            <layer rank="1" name="PT">
                <label end="7" start="0" name="NP"/>
            </layer>
            <layer rank="1" name="Other"/>
            <layer rank="1" name="Sent"/>
            <layer rank="1" name="Verb"/>
        </annotationSet>
    </sentence>
    <sentence corpID="1" docID="10" sentNo="2" paragNo="1" aPos="48" ID="1002">
        <text>Nothing annotated here .</text>
        <annotationSet cDate="11/17/2008" status="UNANN" ID="5003">
            <layer rank="1" name="PENN"/>
        </annotationSet>
    </sentence>
</fullTextAnnotation>
"""

# "The train arrived at noon ."
#  012345678901234567890123456
LU_FILE = f"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<?xml-stylesheet type="text/xsl" href="lexUnit.xsl"?>
<lexUnit status="Finished_Initial" POS="V" name="arrive.v" ID="200" frame="Arriving" frameID="52" totalAnnotated="1" {NS}>
    <header>
        <corpus description="British National Corpus" name="BNC" ID="1">
            <document description="BNC" name="BNC" ID="1"/>
        </corpus>
        <frame>
            <FE fgColor="FFFFFF" bgColor="9400D3" type="Core" abbrev="thm" name="Theme"/>
        </frame>
    </header>
    <definition>COD: reach a place.</definition>
    <lexeme POS="V" name="arrive" order="1" headword="false" breakBefore="false"/>
    <valences>
        <FERealization total="1">
            <FE name="Theme"/>
            <pattern total="1"><valenceUnit GF="Ext" PT="NP" FE="Theme"/><annoSet ID="7002"/></pattern>
        </FERealization>
    </valences>
    <subCorpus name="V-660-s20-np-ppin">
        <sentence sentNo="0" aPos="1234" ID="3001">
            <text>The train arrived at noon .</text>
            <annotationSet cDate="01/07/2003" status="UNANN" ID="7001">
                <layer rank="1" name="BNC">
                    <label end="2" start="0" name="AT0"/>
                </layer>
                <layer rank="1" name="NER"/>
            </annotationSet>
            <annotationSet cDate="01/07/2003" status="MANUAL" ID="7002">
                <layer rank="1" name="FE">
                    <label cBy="ChW" fgColor="FFFFFF" bgColor="9400D3" end="8" start="0" name="Theme"/>
                    <label cBy="ChW" end="24" start="18" name="Time"/>
                    <label cBy="ChW" itype="DNI" name="Goal"/>
                </layer>
                <layer rank="1" name="GF"><label end="8" start="0" name="Ext"/></layer>
                <layer rank="1" name="PT"><label end="8" start="0" name="NP"/></layer>
                <layer rank="1" name="Target">
                    <label cBy="ChW" end="16" start="10" name="Target"/>
                </layer>
            </annotationSet>
        </sentence>
    </subCorpus>
</lexUnit>
"""


def write_release(root: Path, *, extra_fulltext: dict[str, str] | None = None, extra_lu: dict[str, str] | None = None) -> Path:
    for sub in ("frame", "fulltext", "lu"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "frame" / "Abandonment.xml").write_text(FRAME_ABANDON, encoding="utf-8")
    (root / "frame" / "Arriving.xml").write_text(FRAME_ARRIVING, encoding="utf-8")
    (root / "fulltext" / "TEST__doc1.xml").write_text(FULLTEXT, encoding="utf-8")
    (root / "lu" / "lu200.xml").write_text(LU_FILE, encoding="utf-8")
    (root / "frameIndex.xml").write_text(f'<?xml version="1.0"?><frameIndex {NS}/>', encoding="utf-8")
    for name, xml in (extra_fulltext or {}).items():
        (root / "fulltext" / name).write_text(xml, encoding="utf-8")
    for name, xml in (extra_lu or {}).items():
        (root / "lu" / name).write_text(xml, encoding="utf-8")
    return root


def test_frame_files_give_core_types_and_core_sets(tmp_path: Path) -> None:
    frames = FrameNetRelease(write_release(tmp_path)).frames()
    ab = frames["Abandonment"]
    assert ab.core_types == {"Agent": "Core", "Theme": "Core", "Place": "Peripheral", "Explanation": "Extra-Thematic"}
    assert ab.core_sets == [["Agent"]]
    assert ab.is_core("Theme") and not ab.is_core("Place") and not ab.is_core("Explanation")
    assert ab.is_core("Agent", "coreset") and not ab.is_core("Theme", "coreset")
    assert frames["Arriving"].is_core("Goal")  # Core-Unexpressed counts as core


def test_fulltext_reads_target_and_rank1_fe_spans_with_inclusive_ends(tmp_path: Path) -> None:
    rel = FrameNetRelease(write_release(tmp_path))
    sents = list(rel.sentences(("fulltext",)))
    assert [s.id for s in sents] == ["1001", "1002"]
    s = sents[0]
    assert s.source == "fulltext" and s.file == "fulltext/TEST__doc1.xml"
    (ann,) = s.annotations  # the UNANN PENN/NER set is skipped
    assert (ann.frame, ann.lu) == ("Abandonment", "abandon.v")
    assert ann.target == [(9, 17)] and s.text[9 : 17 + 1] == "abandoned"
    fes = {fe.name: (fe.start, fe.end) for fe in ann.fes}
    # rank-2 FE layer, GF/PT layers and the null-instantiated Explanation are not frame elements here
    assert fes == {"Agent": (0, 7), "Theme": (19, 29), "Place": (31, 45)}
    assert s.text[19 : 29 + 1] == "the old car"
    assert sents[1].annotations == []
    assert rel.summary.null_instantiations == 1 and rel.summary.problems == 0


def test_lu_exemplars_take_frame_and_unit_from_the_lexunit_root(tmp_path: Path) -> None:
    rel = FrameNetRelease(write_release(tmp_path))
    (s,) = list(rel.sentences(("exemplars",)))
    assert s.source == "exemplars" and s.id == "3001"
    (ann,) = s.annotations  # the BNC POS set has no Target and is skipped
    assert (ann.frame, ann.lu, ann.set_id) == ("Arriving", "arrive.v", "7002")
    assert [s.text[a : b + 1] for a, b in ann.target] == ["arrived"]
    assert {fe.name: s.text[fe.start : fe.end + 1] for fe in ann.fes} == {"Theme": "The train", "Time": "at noon"}


def test_default_reads_fulltext_then_exemplars(tmp_path: Path) -> None:
    rel = FrameNetRelease(write_release(tmp_path))
    assert [s.source for s in rel.sentences()] == ["fulltext", "fulltext", "exemplars"]
    assert rel.summary.files == 2 and rel.summary.sentences == 3 and rel.summary.annotation_sets == 2


def test_malformed_file_is_one_warning_naming_file_and_element_and_the_rest_is_read(tmp_path: Path) -> None:
    broken = FULLTEXT.replace('ID="1002">', 'ID="1002">\n        <text>Broken <b>sentence</text>', 1)
    lines: list[str] = []
    rel = FrameNetRelease(write_release(tmp_path, extra_fulltext={"AAA__broken.xml": broken}), warn=lines.append)
    sents = list(rel.sentences())
    assert len(lines) == 1
    assert "fulltext/AAA__broken.xml" in lines[0] and "malformed XML" in lines[0] and "<b>" in lines[0]
    # the broken file's sentence before the break is kept; the good fulltext file and the lu file are still read
    assert [(s.file, s.id) for s in sents] == [("fulltext/AAA__broken.xml", "1001"), ("fulltext/TEST__doc1.xml", "1001"),
                                               ("fulltext/TEST__doc1.xml", "1002"), ("lu/lu200.xml", "3001")]
    assert rel.summary.problems == 1 and rel.summary.files_with_problems == 1 and rel.summary.files == 3


def test_bad_offsets_skip_one_label_with_a_warning(tmp_path: Path) -> None:
    bad = LU_FILE.replace('end="24" start="18" name="Time"', 'end="99" start="18" name="Time"').replace('end="8" start="0" name="Theme"/>\n                    <label cBy',
                                                                                                  'end="x" start="0" name="Theme"/>\n                    <label cBy', 1)
    lines: list[str] = []
    rel = FrameNetRelease(write_release(tmp_path, extra_lu={"lu201.xml": bad}), warn=lines.append)
    got = [s for s in rel.sentences(("exemplars",)) if s.file == "lu/lu201.xml"]
    assert len(lines) == 2 and all("lu/lu201.xml" in ln for ln in lines)
    assert any("'Time'" in ln and "outside" in ln for ln in lines) and any("'Theme'" in ln and "not integers" in ln for ln in lines)
    assert got[0].annotations[0].fes == []  # both labels dropped, the annotation set kept
    assert rel.summary.problems == 2


def test_foreign_root_element_is_skipped_with_a_warning(tmp_path: Path) -> None:
    lines: list[str] = []
    rel = FrameNetRelease(write_release(tmp_path, extra_lu={"lu999.xml": '<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml"><body/></html>'}),
                          warn=lines.append)
    assert len(list(rel.sentences(("exemplars",)))) == 1
    assert len(lines) == 1 and "lu/lu999.xml" in lines[0] and "<html>" in lines[0]


def test_warnings_beyond_the_cap_are_counted_not_shown(tmp_path: Path) -> None:
    broken = {f"lu{300 + i}.xml": "<lexUnit frame='Arriving'><subCorpus>" for i in range(5)}
    lines: list[str] = []
    rel = FrameNetRelease(write_release(tmp_path, extra_lu=broken), warn=lines.append, max_shown=2)
    list(rel.sentences())
    assert len(lines) == 2 and "further problems are counted" in lines[1]
    assert rel.summary.problems == 5


def test_a_folder_that_is_not_a_release_is_an_input_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="not a FrameNet release"):
        FrameNetRelease(tmp_path / "empty")
    with pytest.raises(InputError, match="no such folder"):
        FrameNetRelease(tmp_path / "missing")
    (tmp_path / "fndata-1.7.zip").write_bytes(b"PK")
    with pytest.raises(InputError, match="is a file"):
        FrameNetRelease(tmp_path / "fndata-1.7.zip")
    write_release(tmp_path / "parent" / "fndata-1.7")
    with pytest.raises(InputError, match="did you mean .*fndata-1.7"):
        FrameNetRelease(tmp_path / "parent")


def test_reader_drops_each_sentence_from_the_tree_after_reading_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Streaming: the parse tree's root never accumulates the sentences already read.

    iterparse builds the tree one read buffer ahead of its events, so the root may hold the sentences of one
    buffer (16 KiB) but never the whole file.
    """
    import xml.etree.ElementTree as ET

    many = FULLTEXT.replace("</fullTextAnnotation>", "".join(
        f'<sentence ID="{9000 + i}"><text>Sentence {i} .</text></sentence>' for i in range(5000)) + "</fullTextAnnotation>")
    rel = FrameNetRelease(write_release(tmp_path, extra_fulltext={"big.xml": many}))
    roots: list[ET.Element] = []
    real = ET.iterparse

    def spy(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202 - remembers each parse's root element
        first = True
        for event, elem in real(*args, **kwargs):
            if first:
                roots.append(elem)
                first = False
            yield event, elem

    monkeypatch.setattr(ET, "iterparse", spy)
    n, most = 0, 0
    for s in rel.sentences(("fulltext",)):
        if s.file == "fulltext/big.xml":
            n += 1
            most = max(most, len(roots[-1]))
    assert n == 5002
    assert most < 1000  # the file has 5002 sentences; one read buffer holds a few hundred
