"""Streaming reader of the FrameNet 1.7 release layout (fndata-1.7, or NLTK's framenet_v17 folder).

The release holds ``frame/*.xml`` (one frame each, with every frame element's ``coreType``),
``fulltext/*.xml`` (running text, root ``fullTextAnnotation``) and ``lu/*.xml`` (one lexical unit each,
root ``lexUnit``, with exemplar sentences in ``subCorpus`` elements: the sentences the paper's authors used).
All three are in the namespace ``http://framenet.icsi.berkeley.edu``.

A sentence's frame annotation is an ``annotationSet`` with a ``Target`` layer (the frame-evoking words) and
a rank-1 ``FE`` layer whose ``label`` elements give each frame element's character span; ``end`` is
INCLUSIVE. In full text the set names its frame (``frameName``/``luName``); in a lexical-unit file the frame
and unit are the root's (``frame``/``name``). Other layers (PENN, NER, GF, PT, ...), unannotated sets and
null-instantiated frame elements (``itype``, no span) are skipped.

Files are parsed with ``iterparse``; each sentence is dropped from the tree as soon as it is read, so
memory stays flat whatever the file's size. A malformed file costs one warning line naming the file and
the element being read; the sentences before the break are kept and the rest of the corpus is read.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bertsecrets_cli.errors import InputError
from bertsecrets_cli.inputs import open_binary

NS = "http://framenet.icsi.berkeley.edu"
CORE_TYPES = ("Core", "Core-Unexpressed")
SOURCES = ("fulltext", "exemplars")
MAX_SHOWN_WARNINGS = 20

_NOT_RELEASE = "not a FrameNet release (expected frame/ plus fulltext/ or lu/ folders of .xml files, as in fndata-1.7 or NLTK's framenet_v17)"


@dataclass(frozen=True)
class FEMention:
    """An overt frame element: its name and character span (``end`` inclusive, as in the XML)."""

    name: str
    start: int
    end: int


@dataclass
class FrameAnnotation:
    """One annotation set: a frame-evoking target and the frame elements it takes."""

    frame: str
    lu: str
    target: list[tuple[int, int]]  # inclusive character spans; discontinuous targets have several
    fes: list[FEMention]
    set_id: str


@dataclass
class FNSentence:
    id: str  # the sentence's ID attribute (unique within the release)
    text: str
    source: str  # "fulltext" or "exemplars"
    file: str  # path relative to the release folder
    annotations: list[FrameAnnotation]


@dataclass
class FrameInfo:
    name: str
    core_types: dict[str, str]  # frame element -> coreType (Core, Core-Unexpressed, Peripheral, Extra-Thematic)
    core_sets: list[list[str]]  # FEcoreSet groups (the authors' code took core elements from these)

    def is_core(self, fe: str, definition: str = "coretype") -> bool:
        """``coretype``: the FE's coreType is Core or Core-Unexpressed; ``coreset``: it is in an FEcoreSet."""
        if definition == "coreset":
            return any(fe in s for s in self.core_sets)
        return self.core_types.get(fe) in CORE_TYPES


@dataclass
class ReadSummary:
    """What the reader saw; ``problems`` counts every warning (shown or not)."""

    files: int = 0
    files_with_problems: int = 0
    problems: int = 0
    sentences: int = 0
    annotation_sets: int = 0
    null_instantiations: int = 0
    frames: int = 0
    _bad_files: set[str] = field(default_factory=set, repr=False)

    def as_dict(self) -> dict[str, int]:
        return {k: v for k, v in asdict(self).items() if not k.startswith("_")}


def _nothing() -> None:
    pass


def _drop(line: str) -> None:
    """Where problems go when the caller gave no callback."""


def _local(tag: Any) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _namespace(tag: str) -> str:
    return tag[1:].split("}", 1)[0] if tag.startswith("{") else ""


def _children(elem: ET.Element, name: str) -> list[ET.Element]:
    return [c for c in elem if _local(c.tag) == name]


def _xml_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.xml") if p.is_file()) if folder.is_dir() else []


class FrameNetRelease:
    """A FrameNet release folder, read lazily; ``summary`` fills in as files are read."""

    def __init__(self, path: str | Path, *, warn: Callable[[str], None] | None = None, detail: Callable[[str], None] | None = None,
                 max_shown: int = MAX_SHOWN_WARNINGS) -> None:
        self.root = Path(path).expanduser()
        if not self.root.exists():
            raise InputError(f"{path}: no such folder")
        if not self.root.is_dir():
            raise InputError(f"{path}: is a file, not a folder; unpack the release and pass its folder ({_NOT_RELEASE})")
        self.frame_files = _xml_files(self.root / "frame")
        self.fulltext_files = _xml_files(self.root / "fulltext")
        self.lu_files = _xml_files(self.root / "lu")
        if not self.frame_files or not (self.fulltext_files or self.lu_files):
            nested = [p.name for p in self.root.iterdir() if p.is_dir() and (p / "frame").is_dir()]
            hint = f"; did you mean {self.root / nested[0]}?" if nested else ""
            raise InputError(f"{path}: {_NOT_RELEASE}{hint}")
        self.summary = ReadSummary()
        self._warn = warn  # the first max_shown problems (the job passes stderr notes; None drops them)
        self._detail = detail  # the rest, for -v
        self._max_shown = max_shown
        self._shown = 0

    # -- problems -------------------------------------------------------------------------
    def _problem(self, file: Path, msg: str) -> None:
        rel = self._rel(file)
        self.summary.problems += 1
        self.summary._bad_files.add(rel)
        self.summary.files_with_problems = len(self.summary._bad_files)
        line = f"warning: {rel}: {msg}"
        if self._shown < self._max_shown:
            self._shown += 1
            (self._warn or _drop)(line + ("" if self._shown < self._max_shown else " (further problems are counted, not shown; -v shows them)"))
        else:
            (self._detail or _drop)(line)

    def _rel(self, file: Path) -> str:
        try:
            return str(file.relative_to(self.root))
        except ValueError:
            return str(file)

    def _iterparse(self, file: Path, expected_root: str) -> Iterator[tuple[str, ET.Element, list[ET.Element]]]:
        """Yield ("start"|"end", element, stack of open ancestors); malformed XML ends the file with a warning.

        Elements outside sentences are removed from their parent when they end, sentences by the caller's
        loop right after use: the tree never holds more than one sentence.
        """
        self.summary.files += 1
        stack: list[ET.Element] = []
        opened = open_binary(file, what="FrameNet file")  # a regular file only: a FIFO or device never blocks the read
        try:
            fh = opened.__enter__()
        except InputError as e:
            self._problem(file, f"{e.message.partition(': ')[2]}; file skipped")
            return
        try:
            it = ET.iterparse(fh, events=("start", "end"))
        except OSError as e:
            opened.__exit__(None, None, None)
            self._problem(file, f"cannot read: {e.strerror or e}")
            return
        try:
            while True:
                try:
                    event, elem = next(it)
                except StopIteration:
                    return
                except ET.ParseError as e:
                    where = f"<{_local(stack[-1].tag)}>" if stack else "the document"
                    self._problem(file, f"malformed XML in {where} ({e}); rest of this file skipped")
                    return
                except OSError as e:
                    self._problem(file, f"cannot read: {e.strerror or e}")
                    return
                if event == "start":
                    if not stack:
                        ns = _namespace(elem.tag)
                        if _local(elem.tag) != expected_root or ns not in (NS, ""):
                            self._problem(file, f"root element <{_local(elem.tag)}>{' in namespace ' + ns if ns else ''} is not a FrameNet <{expected_root}>; file skipped")
                            return
                    stack.append(elem)
                    yield event, elem, stack
                    continue
                stack.pop()
                yield event, elem, stack
                if stack and not any(_local(a.tag) == "sentence" for a in stack):
                    stack[-1].remove(elem)  # done with it: the tree keeps at most one sentence
                    elem.clear()
        finally:
            close = getattr(it, "close", None)  # Python >= 3.13 closes the file early
            if close is not None:
                close()
            opened.__exit__(None, None, None)

    # -- frames ---------------------------------------------------------------------------
    def frames(self) -> dict[str, FrameInfo]:
        """Every frame's FE core types and core sets, from frame/*.xml."""
        out: dict[str, FrameInfo] = {}
        for file in self.frame_files:
            info: FrameInfo | None = None
            in_coreset: list[str] | None = None
            for event, elem, stack in self._iterparse(file, "frame"):
                tag = _local(elem.tag)
                if event == "start":
                    if len(stack) == 1:
                        name = elem.get("name")
                        if not name:
                            self._problem(file, "<frame> has no name attribute; file skipped")
                            break
                        info = FrameInfo(name, {}, [])
                    elif tag == "FEcoreSet" and len(stack) == 2:
                        in_coreset = []
                    continue
                if info is None:
                    continue
                if tag == "FE" and len(stack) == 1:
                    fe, core = elem.get("name"), elem.get("coreType")
                    if not fe or not core:
                        self._problem(file, f"<FE name={fe!r}> lacks a name or coreType; it is treated as non-core")
                        continue
                    info.core_types[fe] = core
                elif tag == "memberFE" and in_coreset is not None and elem.get("name"):
                    in_coreset.append(elem.get("name", ""))
                elif tag == "FEcoreSet" and in_coreset is not None:
                    info.core_sets.append(in_coreset)
                    in_coreset = None
            if info is not None:
                out[info.name] = info
        self.summary.frames = len(out)
        return out

    def fulltext_index(self) -> list[str] | None:
        """The fulltext/*.xml file names that ``fulltextIndex.xml`` lists (``CORPUS__DOCUMENT.xml``), or None when
        the release has no readable index: what a run can compare with the documents it read."""
        index = self.root / "fulltextIndex.xml"
        if not index.is_file():
            return None
        try:
            root = ET.parse(index).getroot()
        except ET.ParseError as e:
            self._problem(index, f"malformed XML ({e}); the index is not used")
            return None
        names = []
        for corpus in (el for el in root.iter() if _local(el.tag) == "corpus"):
            for doc in (el for el in corpus.iter() if _local(el.tag) == "document"):
                names.append(f"{corpus.get('name', '')}__{doc.get('name', '')}.xml")
        return names

    # -- sentences ------------------------------------------------------------------------
    def sentences(self, sources: tuple[str, ...] = SOURCES, on_file: Callable[[], None] | None = None) -> Iterator[FNSentence]:
        """Sentences with their frame annotations: full text first, then lexical-unit exemplars, by file name;
        ``on_file`` is called after each file (a caller's progress)."""
        for s in sources:
            if s not in SOURCES:
                raise InputError(f"unknown FrameNet sentence source {s!r}; choose from {', '.join(SOURCES)}")
        if "fulltext" in sources:
            if not self.fulltext_files and sources == ("fulltext",):
                raise InputError(f"{self.root}: has no fulltext/*.xml files")
            for file in self.fulltext_files:
                yield from self._file_sentences(file, "fulltext")
                (on_file or _nothing)()
        if "exemplars" in sources:
            if not self.lu_files and sources == ("exemplars",):
                raise InputError(f"{self.root}: has no lu/*.xml files")
            for file in self.lu_files:
                yield from self._file_sentences(file, "exemplars")
                (on_file or _nothing)()

    def _file_sentences(self, file: Path, source: str) -> Iterator[FNSentence]:
        root_name = "fullTextAnnotation" if source == "fulltext" else "lexUnit"
        lu_frame: str | None = None
        lu_name = ""
        for event, elem, stack in self._iterparse(file, root_name):
            if event == "start":
                if len(stack) == 1 and source == "exemplars":
                    lu_frame, lu_name = elem.get("frame"), elem.get("name", "")
                    if not lu_frame:
                        self._problem(file, "<lexUnit> has no frame attribute; file skipped")
                        return
                continue
            if _local(elem.tag) != "sentence":
                continue
            sent = self._sentence(file, elem, source, lu_frame, lu_name)
            if sent is not None:
                self.summary.sentences += 1
                yield sent

    def _sentence(self, file: Path, elem: ET.Element, source: str, lu_frame: str | None, lu_name: str) -> FNSentence | None:
        sid = elem.get("ID", "?")
        texts = _children(elem, "text")
        if not texts:
            self._problem(file, f"<sentence ID={sid}> has no <text>; sentence skipped")
            return None
        text = texts[0].text or ""
        anns: list[FrameAnnotation] = []
        for aset in _children(elem, "annotationSet"):
            ann = self._annotation(file, sid, text, aset, lu_frame, lu_name)
            if ann is not None:
                anns.append(ann)
        return FNSentence(sid, text, source, self._rel(file), anns)

    def _span(self, file: Path, where: str, label: ET.Element, text: str) -> tuple[int, int] | None:
        try:
            start, end = int(label.get("start", "")), int(label.get("end", ""))
        except ValueError:
            self._problem(file, f"{where}: start/end {label.get('start')!r}/{label.get('end')!r} are not integers; label skipped")
            return None
        if not 0 <= start <= end < len(text):
            self._problem(file, f"{where}: span {start}-{end} lies outside the {len(text)}-character text; label skipped")
            return None
        return start, end

    def _annotation(self, file: Path, sid: str, text: str, aset: ET.Element, lu_frame: str | None, lu_name: str) -> FrameAnnotation | None:
        frame = aset.get("frameName") or lu_frame
        if not frame:
            return None  # an unannotated (PENN/NER/POS) set
        layers = _children(aset, "layer")
        target_layers = [lay for lay in layers if lay.get("name") == "Target" and lay.get("rank", "1") == "1"]
        target_labels = [lab for lay in target_layers for lab in _children(lay, "label")]
        if not target_labels:
            return None  # the POS set of an exemplar, or a set whose target was never marked
        where = f"<annotationSet ID={aset.get('ID', '?')}> of <sentence ID={sid}>"
        target = [s for lab in target_labels if (s := self._span(file, f"{where}, Target <label>", lab, text)) is not None]
        if not target:
            return None
        fes: list[FEMention] = []
        for lay in layers:
            if lay.get("name") != "FE" or lay.get("rank", "1") != "1":
                continue
            for lab in _children(lay, "label"):
                name = lab.get("name")
                if not name:
                    self._problem(file, f"{where}: FE <label> without a name; label skipped")
                    continue
                if lab.get("itype") is not None and lab.get("start") is None:
                    self.summary.null_instantiations += 1
                    continue
                span = self._span(file, f"{where}, FE <label name={name!r}>", lab, text)
                if span is not None:
                    fes.append(FEMention(name, *span))
        self.summary.annotation_sets += 1
        return FrameAnnotation(frame, aset.get("luName") or lu_name, target, fes, aset.get("ID", ""))
