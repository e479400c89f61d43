"""The training recipe a dataset gets when the config leaves it to vistrain (``augment.spec: auto``,
``data.resize: auto``): digits keep the MNIST recipe, small images of one size get CIFAR's, and photos
get timm's defaults (a random resized crop of the full image and a flip, evaluated on a centre crop).

A source may declare its recipe (``DataSource.recipe``); otherwise it is read off the images: one size of
at most 64 px is digits (grey) or small (colour), anything else is photos.
"""

from __future__ import annotations

from dataclasses import dataclass

SMALL_MAX = 64  # the largest side of a "small image" dataset


@dataclass(frozen=True)
class Recipe:
    """An augmentation spec and an input geometry, with what they are for."""

    spec: str
    resize: str
    what: str


RECIPES = {
    "digits": Recipe("affine-deg10-shift2-scale0.1-shear5,elastic-p0.5", "squash",
                     "a mild affine jitter and elastic distortion (the MNIST recipe)"),
    "small": Recipe("crop-pad4,flip-h", "squash", "a padded random crop and a horizontal flip (the CIFAR recipe)"),
    "photos": Recipe("resized-crop,flip-h", "crop",
                     "a random resized crop of the full image and a horizontal flip, evaluated on a centre crop "
                     "(timm's defaults)"),
}


def declared(spec: str) -> str:
    """The recipe the dataset *spec* declares when registered (``recipe=`` meta), else ""."""
    from vistrain.plugins import registry

    entry, _arg = registry("dataset").get(spec)
    recipe = str(entry.meta.get("recipe", ""))
    return recipe if recipe in RECIPES else ""


def kind_of(source) -> tuple[str, str]:
    """(recipe name, why) for a loaded :class:`~vistrain.data.source.DataSource`."""
    if source.recipe in RECIPES:
        return source.recipe, f"{source.name} declares it"
    size = source.image_size
    if size and max(size) <= SMALL_MAX:
        shape = f"{size[0]}x{size[1]}"
        if source.channels == 1:
            return "digits", f"{source.name} holds {shape} grey images"
        return "small", f"{source.name} holds {shape} colour images"
    held = "images of several sizes" if size is None else f"{size[0]}x{size[1]} images"
    return "photos", f"{source.name} holds {held}"


def resolve(cfg, source):
    """*cfg* with ``augment.spec`` and ``data.resize`` filled in where they are ``auto``; returns (config, a line
    saying what was picked and why, or None when nothing was left to vistrain)."""
    spec_auto, resize_auto = cfg.augment.spec == "auto", cfg.data.resize == "auto"
    if not (spec_auto or resize_auto):
        return cfg, None
    kind, why = kind_of(source)
    recipe = RECIPES[kind]
    update = {}
    picked = []
    if spec_auto:
        update["augment"] = cfg.augment.model_copy(update={"spec": recipe.spec})
        picked.append(f"augment.spec={recipe.spec}")
    if resize_auto:
        update["data"] = cfg.data.model_copy(update={"resize": recipe.resize})
        picked.append(f"data.resize={recipe.resize}")
    line = f"recipe: {kind}, because {why}: {recipe.what} ({', '.join(picked)})"
    return cfg.model_copy(update=update), line
