"""Prompt templates and class-name prompts for text proxies; torch-free, so planning checks a
config's `text_proxies.templates` without building anything."""

from __future__ import annotations

from importlib import resources

import yaml

DEFAULT_TEMPLATES = "clip_imagenet"
PLACEHOLDER = "{}"


def template_sets() -> dict[str, list[str]]:
    """The packaged template sets by name (data/clip_templates.yaml)."""
    text = resources.files("imprint.data").joinpath("clip_templates.yaml").read_text()
    return yaml.safe_load(text)


def resolve_templates(templates: str | list, where: str = "templates") -> list[str]:
    """A template set by name, or a list of templates, each holding "{}" once; a ValueError
    names `where`, the value and what is allowed."""
    sets = template_sets()
    if isinstance(templates, str):
        if templates not in sets:
            raise ValueError(
                f"{where}: unknown template set {templates!r}; known: {', '.join(sets)}, or a "
                'list of templates such as ["a photo of a {}."]'
            )
        return list(sets[templates])
    if not isinstance(templates, list) or not templates:
        raise ValueError(f"{where}: a template set's name or a non-empty list, got {templates!r}")
    for i, template in enumerate(templates):
        if not isinstance(template, str) or template.count(PLACEHOLDER) != 1:
            raise ValueError(
                f'{where}[{i}]: {template!r} must be a string holding "{{}}" (the class name) once'
            )
    return list(templates)


def prompt_name(class_name: str) -> str:
    """A class name as prompts read it: underscores (folder names, CIFAR's) become spaces."""
    return " ".join(str(class_name).replace("_", " ").split())


def class_prompts(class_name: str, templates: list[str]) -> list[str]:
    """Every template filled with the class's name."""
    name = prompt_name(class_name)
    return [template.replace(PLACEHOLDER, name) for template in templates]
