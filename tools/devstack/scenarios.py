"""Traffic for the demo and the end-to-end tests: ordinary held-out SMS, and a new spam campaign.

``holdout_messages`` are the labelled messages the training pipeline held out of the bundled
dataset (same de-duplication, same split, same seed), so replaying them through ``/predict`` is
traffic the champion never trained on. ``referral_campaign`` is drift the 2012 corpus never saw:
friendly "crypto went up, send your wallet" messages that the champion calls ham, mixed with
ordinary chat.
"""

from __future__ import annotations

import random

from autoretrain.config import Settings
from autoretrain.data.prepare import deduplicate, split
from autoretrain.data.sources import read_dataset

NAMES = ("jess", "mike", "anna", "tom", "priya", "leo", "sam", "kate", "omar", "lucy")
COINS = ("bitcoin", "eth", "solana", "dogecoin", "the new token")


def holdout_messages(settings: Settings) -> list[tuple[str, str]]:
    """``(text, label)`` of the training pipeline's hold-out split of the configured dataset."""
    dataset = read_dataset(settings.resolved_data_uri(), labels=settings.labels, text_column=settings.text_column,
                           label_column=settings.label_column)
    unique, _ = deduplicate(dataset.frame)
    _, test = split(unique, test_size=settings.test_size, seed=settings.random_seed)
    return list(zip(test["text"], test["label"], strict=True))


def referral_campaign(n_spam: int, n_ham: int, seed: int = 5) -> list[tuple[str, str]]:
    """``n_spam`` campaign messages (label spam), then ``n_ham`` ordinary chat messages (label ham)."""
    rng = random.Random(seed)
    spam = [(f"hey its {rng.choice(NAMES)} from the {rng.choice(['group chat', 'gym', 'office', 'book club'])}, "
             f"that {rng.choice(COINS)} thing I told u about went up {rng.randint(3, 40)}x this week, want me to "
             f"add u? just send your wallet {rng.choice(['today', 'tonight', 'before monday'])} #{i}", "spam")
            for i in range(n_spam)]
    ham = [(f"{rng.choice(NAMES)} are we still on for {rng.choice(['dinner', 'the movie', 'coffee', 'football'])} "
            f"{rng.choice(['tonight', 'tomorrow', 'on saturday'])}? running {rng.randint(5, 30)} min late #{i}", "ham")
           for i in range(n_ham)]
    return spam + ham
