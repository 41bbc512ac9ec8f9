"""The card names the model that the params train: a run on data of one's own must give its own title and hub id,
not keep those of a shipped recipe written for the shipped sample (its title says "sample Q/A data")."""

from __future__ import annotations

from pathlib import Path

import yaml

from reranker.core.errors import PipelineError

RECIPES = Path("conf/recipe")
SAMPLE = "sample/"  # the shipped data's folder


def sample_card_names(recipes: Path = RECIPES) -> dict[str, str]:
    """Each `card.model_name` and `card.model_id` a shipped recipe on the shipped sample gives, mapped to the
    sample's source it trains on.

    Example: ``sample_card_names()["rerank-pipeline/reranker-minilm-l6-sample"]`` is ``"sample/qa"``.
    """
    names = {}
    for recipe in sorted(recipes.glob("*.yaml")) if recipes.is_dir() else []:
        values = yaml.safe_load(recipe.read_text()) or {}
        source, card = (values.get("download") or {}).get("source"), values.get("card") or {}
        for key in ("model_name", "model_id"):
            if source and str(source).startswith(SAMPLE) and card.get(key):
                names[card[key]] = source
    return names


def check_card_names(download, card, recipes: Path = RECIPES) -> None:
    """`download` and `card` are params.download and params.card: a title or hub id that a shipped recipe gives
    its own data must come with that data."""
    names = sample_card_names(recipes)
    for key in ("model_name", "model_id"):
        value = getattr(card, key)
        trained_on = names.get(value)
        if trained_on is not None and (download.source != trained_on or download.more_sources):
            raise PipelineError(f"card.{key} is '{value}', the name of a model trained on {trained_on}, but "
                                f"download.source is {download.source}"
                                f"{' with download.more_sources' if download.more_sources else ''}; give the card "
                                f"your model's own, e.g. -S card.model_name='...' -S card.model_id=ORG/NAME")
