"""What the user wants to train, read by meaning: any noun phrase lands in a subject type.

The phrase tables (phrases.SUBJECT_CUES) know the common nouns; a noun nobody listed ("my
corgi", "a teapot I designed", "it's a lighting look") is found by where it stands in the
sentence (`subject_phrase`) and classified by `SubjectClassifier`: a scikit-learn nearest-
neighbour vote over all-MiniLM-L6-v2 embeddings of labelled examples kept here as data. Below
`min_similarity` it says nothing and the interview asks, so a guess never replaces a question.

No heavy import at module level: the embedder is passed in (advisor.knowledge.retrieval loads
it), and numpy / scikit-learn are imported when a classifier is fitted.
"""
from __future__ import annotations

import re
from typing import Any

# Labelled examples per subject type (the words people use; never the test suite's own nouns).
SUBJECT_EXAMPLES: dict[str, tuple[str, ...]] = {
    "person": ("woman", "man", "my wife", "my husband", "my son", "my daughter", "grandmother", "grandfather",
               "a girl", "a boy", "my face", "selfie", "my friend", "a baby", "an actor", "the bride", "my mom",
               "a teenager", "my uncle", "a nurse", "a firefighter", "an old man", "a kid", "a streamer",
               "a singer", "my coworker", "a bodybuilder", "twins", "a ballerina", "a doctor"),
    "animal": ("dog", "cat", "labrador", "poodle", "husky", "golden retriever", "kitten", "parrot", "horse",
               "rabbit", "hamster", "cow", "chicken", "goldfish", "lizard", "snake", "ferret", "tortoise", "owl",
               "pig", "goat", "sheep", "duck", "puppy", "tabby cat", "siamese cat", "dachshund", "german shepherd",
               "cockatiel", "guinea pig", "bulldog", "maine coon", "gecko", "alpaca", "chihuahua"),
    "object": ("sneaker", "mug", "bottle", "car", "handbag", "watch", "chair", "lamp", "guitar", "ring", "necklace",
               "perfume bottle", "backpack", "shoe", "helmet", "bicycle", "sofa", "toy", "plush toy", "vase",
               "candle", "headphones", "phone case", "jar", "ceramic bowl", "figurine", "robot", "package",
               "sunglasses", "jacket", "wristwatch", "kettle", "coffee machine", "skateboard", "drone", "cake",
               "building", "house", "boat", "book cover", "camera", "camera lens", "typewriter", "record player",
               "antique clock", "old radio"),
    "style": ("watercolor", "oil painting", "anime style", "pixel art", "line art", "comic style", "art style",
              "aesthetic", "color grading", "film look", "vintage photo look", "cinematic look", "ink drawing",
              "charcoal sketch", "low poly", "vaporwave", "cyberpunk aesthetic", "my drawings", "my illustrations",
              "photography style", "moody lighting", "the look of my photos", "brush strokes", "a visual style",
              "a rendering style", "a color palette", "lomography", "analog film", "studio lighting"),
    "general": ("landscapes", "cityscapes", "architecture", "food photography", "street photography", "nature photos",
                "satellite images", "medical images", "interior design photos", "fashion photos", "stock photos",
                "game screenshots", "product catalog", "real estate photos", "wildlife photography", "microscopy",
                "mri scans", "ct scans", "medical scans", "radiographs", "our projects", "our portfolio",
                "company work", "drone footage stills", "aerial photos"),
    "concept": ("a pose", "a gesture", "an action", "a facial expression", "a camera angle", "a composition",
                "a hand sign", "a dance move", "a hairstyle", "a magic effect", "a visual effect", "an explosion",
                "a layout", "a transformation", "a clothing type", "a tattoo design", "a glowing effect",
                "a body position"),
}
MIN_SIMILARITY = 0.35  # cosine similarity to the nearest example below which the classifier abstains

_NP = r"(?P<np>[a-z][a-z'-]*(?:\s+[a-z][a-z'-]*){0,2})"
_DET = r"(?:(?:my|our|a|an|the|his|her|their|this|these)\s+)"
# Where a subject stands in a sentence, most telling first.
SUBJECT_POSITIONS = [
    re.compile(r"\bit'?s\s+(?:just\s+|really\s+)?(?:a|an|my|our)\s+" + _NP),             # "it's a lighting look"
    re.compile(r"\b(?:loras?|models?|dream\s?booth|embeddings?|checkpoints?|fine[- ]?tunes?)\s+(?:of|for|on)\s+"
               + _DET + "?" + _NP),                                                         # "lora of my corgi"
    re.compile(r"\b(?:train|teach|fine[- ]?tune)(?:ing)?\s+(?:it\s+|a\s+lora\s+|a\s+model\s+)?(?:on\s+|with\s+)?"
               + _DET + _NP),                                                               # "train on my beagle"
    re.compile(r"\b(?:photos|pictures|pics|images|shots|selfies|scans|renders|drawings)\s+of\s+" + _DET + "?"
               + _NP),                                                                      # "photos of our kettle"
    re.compile(r"\b(?:a|an|my|our)\s+" + _NP.replace("{0,2}", "{0,1}") + r"\s+(?:i|we)\s+(?:designed|made|built|"
               r"drew|painted|own|created|sell|sculpted|knitted|sewed)\b"),                 # "a teapot I designed"
]
# When no position holds a subject: the message's first words, "my leopard gecko Mango, ..." (two
# words at most, so a name after the noun stays out).
OPENING = re.compile(r"^\s*(?:my|our)\s+" + _NP.replace("{0,2}", "{0,1}"))
# Last resort, when no position above holds a subject: the words between a count and the
# pictures ("800 mountain landscape photos"), less the words that say how the pictures are.
COUNTED = re.compile(r"\b\d+\s+" + _NP + r"\s+(?:photos|pictures|pics|images|shots|scans|renders|tiles|paintings|"
                     r"drawings|frames|screenshots)\b")
PICTURE_WORDS = frozenset("old new good bad high low quality hq res resolution different random own more great nice "
                          "clean scanned raw jpg jpeg png square cropped captioned tagged labelled labeled similar "
                          "varied best close-up closeup full body phone digital decent other extra training".split())
# Words that end a noun phrase, and nouns that are where pictures are kept, not what they show.
_STOP = re.compile(r"\b(?:with|on|in|of|from|for|and|plus|or|than|but|that|which|who|to|as|at|by|i|we|is|are|was|so|because|"
                   r"please|pics?|photos?|pictures?|images?|shots?)\b.*$")
DEVICES = frozenset("phone camera computer laptop pc".split())   # where pictures are kept, or what is shown
NOT_SUBJECTS = frozenset("phone camera computer laptop pc drive disk folder card gpu colab kaggle instagram "
                         "website account cloud server lora model dataset set it them each us both all those "
                         "these one him her me you sd sdxl xl flux pony illustrious noobai base "
                         "checkpoint".split())


def subject_phrase(text: str, negated=lambda pos: False) -> tuple[int, str] | None:
    """(position, noun phrase) of what the sentence says is trained, or None. `negated(pos)`
    tells a phrase said not to be the subject ("it's not a person")."""
    found = []
    for rx in SUBJECT_POSITIONS:
        for m in rx.finditer(text):
            phrase = _STOP.sub("", m.group("np")).strip()
            phrase = phrase.rsplit("'s ", 1)[-1]  # "my grandma's quilt": the quilt is trained
            words = phrase.split()
            named = rx is SUBJECT_POSITIONS[0]   # "it's my vintage camera": a device can be the subject there
            if not words or words[-1] in (NOT_SUBJECTS - DEVICES if named else NOT_SUBJECTS) or negated(m.start()):
                continue
            found.append((m.start("np"), phrase))
            break
    if not found:   # a message that opens with what it is about: "my leopard gecko Mango, 18 pics"
        m = OPENING.match(text)
        if m and not negated(m.start()):
            words = _STOP.sub("", m.group("np")).strip().split()
            if words and words[-1] not in NOT_SUBJECTS:
                return m.start("np"), " ".join(words)
    if not found:
        for m in COUNTED.finditer(text):
            words = [w for w in m.group("np").split() if w not in PICTURE_WORDS]
            if words and words[-1] not in NOT_SUBJECTS and not negated(m.start()):
                return m.start("np"), " ".join(words)
    return min(found) if found else None


class SubjectClassifier:
    """Subject type of a noun phrase by its nearest labelled examples (scikit-learn k-NN, cosine).

    `fit(embedder)` embeds SUBJECT_EXAMPLES once; `predict(phrase)` returns (subject type,
    similarity of the nearest example) or None when nothing is similar enough."""

    def __init__(self, n_neighbors: int = 5, min_similarity: float = MIN_SIMILARITY):
        self.n_neighbors = n_neighbors
        self.min_similarity = min_similarity

    def fit(self, embedder: Any) -> "SubjectClassifier":
        import numpy as np
        from sklearn.neighbors import KNeighborsClassifier

        phrases = [p for kind in SUBJECT_EXAMPLES for p in SUBJECT_EXAMPLES[kind]]
        labels = [kind for kind in SUBJECT_EXAMPLES for _ in SUBJECT_EXAMPLES[kind]]
        self.embedder_ = embedder
        self.vectors_ = _unit(np.asarray(embedder.encode(phrases), dtype=float))
        self.model_ = KNeighborsClassifier(n_neighbors=self.n_neighbors, metric="cosine", weights="distance")
        self.model_.fit(self.vectors_, labels)
        return self

    def predict(self, phrase: str) -> tuple[str, float] | None:
        """The phrase's type, or its head noun's (the last word: "vintage camera" is a camera) when
        the head is closer to a labelled example than the whole phrase is."""
        import numpy as np

        words = phrase.split()
        texts = [phrase] + ([words[-1]] if len(words) > 1 else [])
        x = _unit(np.asarray(self.embedder_.encode(texts), dtype=float))
        nearest = (self.vectors_ @ x.T).max(axis=0)
        best = int(np.argmax(nearest))
        if nearest[best] < self.min_similarity:
            return None
        return str(self.model_.predict(x[best:best + 1])[0]), float(nearest[best])


def _unit(rows):
    """Rows scaled to length 1, so a dot product is the cosine similarity."""
    import numpy as np

    return rows / (np.linalg.norm(rows, axis=1, keepdims=True) + 1e-12)
