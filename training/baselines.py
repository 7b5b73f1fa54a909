"""The two baselines the model must beat, trained and scored on the same splits.

(a) TF-IDF over character n-grams + one-vs-rest logistic regression (scikit-learn);
(b) zero-shot: cosine between the base model's embedding of a text and of each theme's
    description, with per-theme thresholds tuned on dev.
Both get their thresholds from dev, as the model does.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from transformers import AutoTokenizer

from service.modeling import load_encoder, mean_pool
from service.taxonomy import Taxonomy
from training.data import Item, label_arrays, origin_of
from training.metrics import full_report, tune_thresholds

_SENTIMENT_PROMPTS = {
    "negative": "The customer is unhappy, angry or disappointed and complains.",
    "neutral": "The customer asks a question or states a fact without any feeling.",
    "positive": "The customer is happy, satisfied and praises the company.",
}


def _report(items, taxonomy, theme_pred, sent_pred) -> dict:
    y, s = label_arrays(items, taxonomy)
    return full_report(
        y,
        theme_pred,
        s,
        sent_pred,
        [i.lang for i in items],
        taxonomy.theme_ids,
        list(taxonomy.sentiments),
        [origin_of(i.source) for i in items],
    )


def tfidf_baseline(splits: dict[str, list[Item]], taxonomy: Taxonomy) -> dict:
    """Fit TF-IDF + logistic regression on train, tune thresholds on dev, score test."""
    vectorizer = TfidfVectorizer(
        analyzer="char_wb", ngram_range=(1, 4), min_df=2, sublinear_tf=True, max_features=300_000
    )
    x_train = vectorizer.fit_transform([i.text.lower() for i in splits["train"]])
    y_train, s_train = label_arrays(splits["train"], taxonomy)
    # Themes that never occur in train get a constant zero score instead of a crash.
    themes = OneVsRestClassifier(LogisticRegression(C=10.0, max_iter=2000, class_weight="balanced"))
    present = y_train.any(axis=0)
    themes.fit(x_train, y_train[:, present])
    sentiment = LogisticRegression(C=10.0, max_iter=2000).fit(x_train, s_train)

    def theme_scores(items: list[Item]) -> np.ndarray:
        x = vectorizer.transform([i.text.lower() for i in items])
        out = np.zeros((len(items), len(taxonomy.theme_ids)))
        out[:, present] = themes.predict_proba(x)
        return out

    y_dev, _ = label_arrays(splits["dev"], taxonomy)
    thresholds = tune_thresholds(y_dev, theme_scores(splits["dev"]))
    test = splits["test"]
    pred = (theme_scores(test) >= thresholds).astype(int)
    sent_pred = sentiment.predict(vectorizer.transform([i.text.lower() for i in test]))
    return _report(test, taxonomy, pred, sent_pred)


@torch.inference_mode()
def embed(texts: list[str], base_model: str, prefix: str, batch_size: int = 64) -> np.ndarray:
    """L2-normalised mean-pooled embeddings of ``texts`` from the base encoder."""
    tokenizer = AutoTokenizer.from_pretrained(base_model)
    encoder = load_encoder(base_model).eval()
    order = np.argsort([len(t) for t in texts])
    out = np.zeros((len(texts), encoder.config.hidden_size), dtype=np.float32)
    for start in range(0, len(texts), batch_size):
        idx = order[start : start + batch_size]
        enc = tokenizer(
            [prefix + texts[i] for i in idx],
            padding=True,
            truncation=True,
            max_length=256,
            return_tensors="pt",
        )
        hidden = encoder(
            **{k: v for k, v in enc.items() if k != "token_type_ids"}
        ).last_hidden_state
        pooled = torch.nn.functional.normalize(mean_pool(hidden, enc["attention_mask"]), dim=-1)
        out[idx] = pooled.numpy()
    return out


def zero_shot_baseline(
    splits: dict[str, list[Item]], taxonomy: Taxonomy, base_model: str, prefix: str
) -> dict:
    """Cosine to theme descriptions (English and Chinese averaged); thresholds tuned on dev."""
    descriptions = [
        d for t in taxonomy.themes for d in (t.description["en"], t.description.get("zh", ""))
    ]
    dev, test = splits["dev"], splits["test"]
    vectors = embed(
        descriptions + list(_SENTIMENT_PROMPTS.values()) + [i.text for i in dev + test],
        base_model,
        prefix,
    )
    n_desc = len(descriptions)
    theme_vecs = vectors[:n_desc].reshape(len(taxonomy.themes), 2, -1).mean(1)
    theme_vecs /= np.linalg.norm(theme_vecs, axis=1, keepdims=True)
    sent_vecs = vectors[n_desc : n_desc + len(_SENTIMENT_PROMPTS)]
    texts = vectors[n_desc + len(_SENTIMENT_PROMPTS) :]
    dev_vecs, test_vecs = texts[: len(dev)], texts[len(dev) :]
    y_dev, _ = label_arrays(dev, taxonomy)
    thresholds = tune_thresholds(y_dev, dev_vecs @ theme_vecs.T, default=0.8, from_quantiles=True)
    pred = (test_vecs @ theme_vecs.T >= thresholds).astype(int)
    order = [list(_SENTIMENT_PROMPTS).index(s) for s in taxonomy.sentiments]
    sent_pred = (test_vecs @ sent_vecs[order].T).argmax(1)
    return _report(test, taxonomy, pred, sent_pred)


def run_baselines(
    splits: dict[str, list[Item]], taxonomy: Taxonomy, base_model: str, prefix: str
) -> dict[str, dict]:
    """Both baselines' full reports on the test split."""
    return {
        "tfidf": tfidf_baseline(splits, taxonomy),
        "zero_shot": zero_shot_baseline(splits, taxonomy, base_model, prefix),
    }
