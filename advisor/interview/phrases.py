"""The parser's vocabulary, as data: how newcomers say each profile slot.

advisor/parsing.py is the engine (clean, split, scan, resolve; with parsing_text, parsing_scan,
parsing_amounts and parsing_choices beside it); this module only holds the words and patterns
it reads with. Patterns are regex source strings over the normalised
text (lowercase, numbers as digits). A new phrasing is a new row here plus a row in
tests/test_parsing.py. Rows are tried in order, so within a table specific rows come first.

Every pattern must stay linear: bounded repetition only, no nested quantifiers, so a long
message costs time in proportion to its length (tests/test_parsing.py checks 10k pastes).
GPU names live in advisor/gpus.py.
"""
from __future__ import annotations

import re


def alts(words) -> str:
    """A regex alternation of `words`, longest first so 'guinea pig' wins over 'pig'."""
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


# --------------------------------------------------------------------------- numbers
NUMBER_UNITS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
                "fifteen sixteen seventeen eighteen nineteen").split()
NUMBER_TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()   # 20, 30, ... 90
NUMBER_SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000}

# The words every image count may be followed by ("30 pics", "12 selfies", "40 renders").
IMAGE_NOUNS = (r"(?:pictures?|pics?|photos?|photographs?|images?|imgs?|shots?|selfies|selfie|snaps?|drawings?|"
               r"paintings?|sketches|sketch|illustrations?|artworks?|renders?|screenshots?|portraits?|"
               r"headshots?|frames?|jpe?gs?|pngs?|tiles?|scans?|crops?|x-?rays?|slides?|stills?|samples?|"
               r"captures?|cut-?outs?|thumbnails?|sprites?|glyphs?|textures?|designs?|panels?)")
# A subject count with images per subject: "3 characters, about 25 images each" is 75 images.
SUBJECT_NOUNS = (r"(?:characters?|subjects?|people|persons?|faces?|dogs?|cats?|pets?|products?|items?|objects?|"
                 r"styles?|concepts?|outfits?|models?|ocs?|oc's|brothers?|sisters?|siblings?|kids?|children|"
                 r"friends?|sons?|daughters?|cousins?|puppies|kittens|birds?|horses?|designs?|logos?)")
# How many subjects, said without a subject noun: (regex with an optional group k, what to add to
# k, or the count itself when there is no k). "me and my 2 brothers" is 3; "both my cats" is 2.
SUBJECT_COUNT_PHRASES: list[tuple[str, int]] = [
    (r"\b(?:me|myself|i)\s+and\s+(?:my\s+)?(?P<k>\d+)\s+[a-z']+", 1),
    (r"\b(?:all\s+)?(?P<k>\d+)\s+of\s+(?:us|them|my\s+[a-z']+)\b", 0),
    (r"\b(?:both|the\s+two|the\s+pair)\s+(?:of\s+)?(?:my|our|them|us|the)\b", 2),
    (r"\b(?:me|myself)\s+and\s+(?:my|our)\s+[a-z']+\b", 2),
]
# Images per subject: "30 imgs each", "~15 pics of each", "20 photos per character".
PER_SUBJECT_TAIL = (r"\s+(?:each|apiece|of\s+each(?:\s+(?:one|of\s+them))?|for\s+each(?:\s+(?:one|of\s+them))?|"
                    r"per\s+(?:character|subject|person|face|dog|cat|pet|product|item|object|style|concept|outfit|"
                    r"model|one|oc|kid|brother|sister|head))\b")
# Group shots on top of the per-subject ones: "plus 10 of them together".
TOGETHER = (r"\b(?:plus|and|\+|with)\s+(?:about\s+|~)?(?P<n>\d+)\s+(?:more\s+)?(?:" + "{img}" + r"\s+)?"
            r"(?:of\s+(?:them|us|both|all)\s+)?(?:together|as\s+a\s+group|in\s+(?:one|the\s+same)\s+"
            r"(?:picture|photo|shot|frame)|group\s+(?:shots?|photos?|pics?))")
# A head count that is not an image count: "all 4 of us in one picture".
HEAD_COUNTS = (r"\b(?:all\s+)?\d+\s+of\s+(?:us|them|you|my (?:kids|friends|dogs|cats|family))\b"
               r"|\b\d+\s+(?:people|persons|kids|dogs|cats)\s+in\s+(?:one|a|the same|each)\s+(?:picture|photo|image|shot)\b"
               r"|\b(?:together\s+)?in\s+(?:one|1|a|a single|the same)\s+(?:picture|photo|image|shot|frame)\b")

# Lookahead: an image noun within two words ("hundreds of my old photos").
_BEFORE_IMAGES = r"(?=\s+(?:[a-z'-]+\s+){0,2}" + IMAGE_NOUNS + r"\b)"
# Phrases rewritten before numbers are read, in order (why: each hides a number in words).
# Vague image counts become "~N": N is our pick, and "~" tells the engine to say "about N".
PREPASS: list[tuple[str, str]] = [
    (r"\b(?:a\s+)?couple(?:\s+of)?\s+dozens?(?:\s+of)?" + _BEFORE_IMAGES, "~24"),
    (r"\b(?:a\s+few|several|some)\s+dozens?(?:\s+of)?" + _BEFORE_IMAGES, "~30"),   # 24-36
    (r"\bdozens\s+of" + _BEFORE_IMAGES, "~30"),
    (r"\b(?:a\s+few|several|some)\s+hundreds?(?:\s+of)?" + _BEFORE_IMAGES, "~300"),
    (r"\bhundreds\s+of" + _BEFORE_IMAGES, "~200"),
    (r"\b(?:a\s+few|several|some)\s+thousands?(?:\s+of)?" + _BEFORE_IMAGES, "~3000"),
    (r"\bthousands\s+of" + _BEFORE_IMAGES, "~2000"),
    (r"\ba\s+handful\s+of" + _BEFORE_IMAGES, "~5"),
    (r"\bminus\s+", "-"),
    (r"\bhalf an? hour\b", "30 minutes"),
    (r"\b(?:an?|1|one) hour and a half\b", "90 minutes"),
    (r"\b(?:1|one) and a half hours?\b", "90 minutes"),
    (r"\ba couple(?: of)?\b", "2"),
    (r"\bhalf a dozen\b", "6"),
    (r"\b(?:1|one)[- ]shot\b", "one_shot"),   # a run count; keep it away from "shots"
]

# --------------------------------------------------------------------------- message kinds
# A clause opening like this is a question; values inside it are hypothetical.
QUESTION_START = (
    r"^(?:so\s+|and\s+|but\s+|also\s+|btw,?\s+|oh,?\s+|ok,?\s+|hey,?\s+)?(?:what(?!\s+i\b)|what's|whats|"
    r"how(?!\s+about)|why|which|who|explain|tell me (?:about|more|what|how|why)|is it|is there|"
    r"are there|does|do i|do you|can i|can you|could you|could i|should i|would it|will it|difference between)\b")
# "No idea": the pending question takes its default, marked assumed.
SKIP = (
    r"\b(?:no idea|(?:i\s+)?(?:don't|do not|dont) know|dunno|idk|not sure|unsure|no clue|skip|"
    r"pass|whatever|you decide|you choose|you pick|up to you|your call|no preference|"
    r"(?:doesn't|does not|don't) matter|(?:don't|dont|do not) care|any(?:thing)? is fine|"
    r"use (?:the )?defaults?|default|not a clue|can't say|cannot say)\b")
# Asking for the recommendation itself is not a knowledge question: it ends the interview.
RECOMMEND = (
    r"\b(?:recommend (?:now|something|it|me|a method|one)|give me (?:a |the |your )?(?:recommendation|suggestion|"
    r"plan|answer)|(?:just )?tell me what to do|just tell me|what (?:do|would) you (?:recommend|suggest)|"
    r"what should i (?:use|do|pick|choose|train)|which method should i|can you recommend|(?:your|a) "
    r"(?:recommendation|suggestion)|go ahead|let'?s go|that'?s (?:all|it|everything)|enough questions|"
    r"skip the (?:rest|questions)|show me (?:the |a )?(?:plan|recommendation|settings))\b")
# The message changes an earlier answer.
CHANGE = (
    r"\b(?:actually|change|changed|instead|make that|make it (?=\d)|correction|i meant|i mean|scratch that|"
    r"no wait|rather|switch(?:ed)? to|upgraded|downgraded|now i have|turns out)\b")
# Between two values for one slot, this makes the later one win ("12GB, I mean 24GB").
CORRECTION = (r"\b(?:actually|i mean|i meant|make (?:that|it)|no wait|wait|sorry|correction|"
              r"scratch that|instead|rather|oops)\b")
# Just before a value, this drops it: "not a 4090", "don't have 24GB" (up to two words
# between); "instead of SDXL", "switching from SDXL" (only an article between, so the value
# after "to" is not caught too).
NEGATION = (r"(?:(?:\bnot|n't|\bnever|\bno longer)(?:\s+[\w'-]+){0,2}|\bno|(?:\binstead of|\brather than|"
            r"\bused to (?:have|be)|\b(?:switch|chang|mov|go|upgrad)(?:e|ed|ing|ed)? from)"
            r"(?:\s+(?:a|an|the|my))?)\s*$")
# The message describes what the user wants, so it is kept as the goal.
WANT = (r"\b(?:want|wanna|would like|'d like|like to|trying to|try to|hoping to|hope to|goal|aim|"
        r"looking to|need (?:to|a|an)|make|generate|create|dream|imagine)\b")
# A line that lists dream prompts ("prompts like: ...", "e.g. ...").
PROMPT_LINE = (r"(?im)(?:\bprompts?\s*(?:like|such as|:|=|e\.g\.?)|^\s*(?:e\.g\.|eg\b|for example\b|"
               r"for instance\b|like:))\s*[:,]?\s*(.+)$")

# --------------------------------------------------------------------------- the three factors
# (factor, value 1-5, pattern). Strong/specific rows first within a factor.
FACTOR_PHRASES: list[tuple[str, int, str]] = [
    # accuracy: how exactly the subject must be replicated
    ("accuracy", 5, r"\b(?:look|looks|looking|be)\s+exactly\s+like\b"),
    ("accuracy", 5, r"\bexact(?:ly the same| likeness| replica| copy)\b"),
    ("accuracy", 5, r"\b(?:identical|indistinguishable|pixel[- ]perfect|spitting image)\b"),
    ("accuracy", 5, r"\bperfect(?:ly)?\s+(?:likeness|replica|match|copy|accurate|faithful)\b"),
    ("accuracy", 5, r"\bevery (?:single )?detail\b"),
    ("accuracy", 5, r"(?<!at )(?<!in )\b1\s*:\s*1\b(?!\s*(?:aspect|ratio|crops?|squares?|format|images?))|"
                    r"\b(?:has to|must|needs? to) be (?:100\s*%\s*)?(?:exact|perfect|spot[- ]on|flawless)\b|"
                    r"\bwant\s+(?=(?:it|him|her|them|my\s+\w+)\s+(?:to\s+(?:be|look)\s+)?(?:perfect|exact|spot[- ]on|"
                    r"flawless)\b)"),   # a lookahead: "my dog" stays for the subject reader
    ("accuracy", 5, r"\b100\s*%\s*(?:accurate|faithful|like|the same)\b"),
    ("accuracy", 2, r"\brecogni[sz]able (?:is |would be )?(?:enough|fine|ok|okay|good enough)\b"),
    ("accuracy", 2, r"\bjust (?:needs? to be |has to be )?recogni[sz]able\b"),
    ("accuracy", 2, r"\b(?:doesn't|does not|don't|do not|needn't|need not)\s+(?:need|have)\s+to\s+be\s+"
                    r"(?:exact|perfect|identical|100\s*%)"),
    ("accuracy", 2, r"\b(?:close enough|roughly(?: similar| like| the same|(?!\s*[~\d]))|somewhat similar|"
                    r"similar (?:is|would be) (?:fine|enough|ok|okay)|inspired by)\b"),
    ("accuracy", 1, r"\b(?:vaguely(?: similar| like)?|loosely(?: similar| like| inspired| based)?|"
                    r"(?:just|only) the (?:vibe|gist|feel))\b"),
    ("accuracy", 4, r"\b(?:must|has to|have to|needs? to|should)\s+(?:really\s+|clearly\s+|definitely\s+)?"
                    r"(?:look like|resemble|be recogni[sz]ably)\b"),
    ("accuracy", 4, r"\b(?:must|has to|have to|needs? to) (?:clearly |really |definitely )?be (?:clearly )?"
                    r"(?:him|her|them|me|my \w+)\b"),
    ("accuracy", 4, r"\b(?:very |highly )?accurate(?:ly)?\b|\bfaithful(?:ly)?\b|\bhigh (?:fidelity|likeness)\b"),
    ("accuracy", 4, r"\b(?:keep|preserve) (?:the|his|her|its|their|my) (?:face|identity|likeness|details?)\b"),
    ("accuracy", 4, r"\b(?:likeness|identity|accuracy) (?:matters|is (?:important|key|crucial|critical))\b"),
    ("accuracy", 5, r"\b(?:rendered|reproduced|replicated|drawn|copied|shown)\s+(?:exactly|perfectly|precisely|"
                    r"faithfully|accurately)\b|\b(?:exactly|precisely|perfectly) (?:rendered|reproduced|replicated)\b"),
    ("accuracy", 4, r"\b(?:must|has to|have to|needs? to|should)\s+(?:be\s+)?(?:clearly\s+|instantly\s+|easily\s+)?"
                    r"recogni[sz]able\b"),
    # flexibility: how far from the training images the subject must go
    ("flexibility", 5, r"\ball (?:kinds|sorts|types) of (?:[a-z]+ )?(?:scenes|settings|places|styles|situations|contexts|"
                       r"backgrounds|poses|outfits|things|scenarios|art styles|worlds)\b"),
    ("flexibility", 5, r"\b(?:in )?any (?:scene|setting|style|situation|context|background|pose|outfit|"
                       r"scenario|place|world)s?\b|\banything (?:i|we) (?:want|can imagine|like)\b"),
    ("flexibility", 5, r"\b(?:wild|crazy|fantastical|surreal|impossible) (?:scenes|settings|situations|"
                       r"scenarios|ideas|prompts|stuff)\b|"
                       r"\bcompletely (?:new|different) (?:scenes|settings|styles|contexts|situations)\b"),
    ("flexibility", 4, r"\b(?:as|like|into) an? (?:astronaut|superhero|super hero|knight|wizard|witch|pirate|king|queen|"
                       r"prince|princess|cowboy|samurai|viking|ninja|robot|cyborg|vampire|zombie|chef|"
                       r"soldier|warrior|god|goddess|elf|jedi|cartoon|anime character|pixar character|"
                       r"disney character|lego figure|statue|sculpture|painting)\b"),
    ("flexibility", 4, r"\b(?:in space|on the moon|on mars|underwater|in the style of)\b"),
    ("flexibility", 4, r"\b(?:different|various|varied|new|many|lots of|other|diverse) (?:scenes|settings|places|"
                       r"backgrounds|situations|contexts|styles|art styles|outfits|poses|locations|environments)\b"),
    ("flexibility", 4, r"\b(?:very |really |super |highly )?(?:flexible|versatile)\b"),
    ("flexibility", 4, r"\b(?:fantasy|sci-?fi|science fiction|fairy ?tale|magical|mythical|epic|cinematic|dreamlike|"
                       r"whimsical|storybook) (?:scenes?|settings?|worlds?|landscapes?|situations|scenarios|"
                       r"art|images|pictures|adventures?)\b"),
    ("flexibility", 1, r"\bonly (?:portraits|headshots|product shots|close-?ups|the same (?:pose|angle|setting|"
                       r"scene|style|background))\b"),
    ("flexibility", 1, r"\b(?:just|exactly|only) like (?:the|my|our) (?:photos|pictures|images|training "
                       r"(?:images|data|photos))\b|\bsame (?:as|like) (?:the|my|our) (?:photos|pictures|images|training)\b"),
    ("flexibility", 1, r"\b(?:same|identical) (?:pose|angle|setting|background|scene)s? as\b|\bno (?:need for )?variety\b"),
    ("flexibility", 2, r"\b(?:mostly|mainly) (?:like|similar to) (?:the|my|our) (?:photos|pictures|images|training)\b"
                       r"|\bsmall variations\b|\bminor changes\b|\bsimilar (?:scenes|settings|poses|shots) (?:to|as)\b"),
    # preservation: how much of the base model must stay intact
    ("preservation", 1, r"\b(?:don't|do not|dont|doesn't|does not|won't|wouldn't)\s+(?:really\s+)?(?:care|mind|matter)"
                        r"(?:\s+(?:if|whether|that|about))?[^.;,!?\n]{0,40}?\b(?:forgets?|forgetting|loses?|losing|"
                        r"breaks?|breaking|ruins?|ruining|the rest|everything else|other (?:things|stuff|subjects|"
                        r"content|styles)|the base model)\b"),
    ("preservation", 1, r"\b(?:only|just) (?:needs? to|has to|care about|want it to) (?:do|draw|make|generate|"
                        r"know) (?:this|my|him|her|it|the|that)\b|\bforget (?:everything|the rest|other)\b"),
    ("preservation", 2, r"\b(?:ok|okay|fine|alright) (?:if|that) it (?:forgets|loses|breaks)\b"),
    ("preservation", 5, r"\b(?:must|should|has to|needs? to)\s+still\s+(?:do|draw|make|generate|work for|handle|"
                        r"be able to do)\s+(?:everything|anything|all|other)\b"),
    ("preservation", 5, r"\bintact\b|\b(?:don't|do not|without) (?:break|breaking|ruin|ruining|damage|damaging|"
                        r"hurt|hurting|mess up|messing up|destroy|destroying) (?:the )?(?:base |original )?model\b"),
    ("preservation", 5, r"\bkeep (?:its|the model's|all (?:its|the)|the) (?:general|other|original) "
                        r"(?:abilities|knowledge|skills|capabilities)\b"),
    ("preservation", 5, r"\b(?:keep|leave) (?:the |its )?(?:base |original )?model (?:still )?(?:able to|capable of|"
                        r"good at) (?:\w+ )?(?:everything|anything|all|other)\b|"
                        r"\bkeep everything else (?:working|intact|the same|as (?:it is|before))\b"),
    ("preservation", 5, r"\b(?:the rest of the model|the (?:base|original) model|everything else|the model itself)\s+"
                        r"(?:must|should|has to|needs? to)\s+(?:stay|remain|be left)\s+(?:exactly\s+)?"
                        r"(?:as it is|as it was|the same|intact|untouched|unchanged)\b"),
    ("preservation", 4, r"\bstill (?:be able to )?(?:do|draw|make|generate|work for) (?:other|normal|regular|everything)\b|"
                        r"\bstill\s+(?:need|want)\s+(?:the model|it|sd|the base(?: model)?)\s+to\s+(?:be able to\s+)?"
                        r"(?:do|draw|make|generate)\s+(?:other|normal|regular|everything)\b"),
    ("preservation", 4, r"\b(?:preserve|keep) (?:the )?(?:base|original) (?:model|style|abilities|knowledge)\b"),
]

# "accuracy: high", "very low preservation", and short answers to a factor question.
LEVEL_WORDS = {"very high": 5, "max": 5, "maximum": 5, "top": 5, "highest": 5, "high": 4,
               "medium": 3, "moderate": 3, "mid": 3, "average": 3, "low": 2, "very low": 1,
               "min": 1, "minimum": 1, "lowest": 1, "none": 1}
LEVEL_WORD = r"very high|very low|highest|high|medium|moderate|mid|average|lowest|low|maximum|max|minimum|min|top"
BARE_LEVELS = {"a lot": 4, "very": 5, "very much": 5, "somewhat": 3, "a bit": 2, "a little": 2,
               "not much": 2, "not really": 2, "not at all": 1}
FACTOR_NAMES = {"accuracy": "accuracy", "accurate": "accuracy", "likeness": "accuracy", "fidelity": "accuracy",
                "flexibility": "flexibility", "flexible": "flexibility", "variety": "flexibility",
                "preservation": "preservation", "preserve": "preservation"}

# --------------------------------------------------------------------------- images
# "25 of my paintings": a count before "of my/our/his/her/their".
IMAGE_OWNERS = r"(?:my|our|his|her|their)"
# Words between a number and an image noun that show the number is something else.
NOT_IMAGE_ADJ = (r"(?!(?:gb|gib|gigs?|g|mb|kb|vram|min|mins|minutes?|hours?|hrs?|h|days?|runs?|times?|tries|"
                 r"attempts?|steps?|epochs?|of|per|x|px|by|and|or|to|more|less|percent)\b)")

# --------------------------------------------------------------------------- GPU memory
VRAM_UNIT = r"(?:gb|gib|g|gigs?|gigabytes?)"
VRAM_WORDS = r"(?:vram|v-ram|gpu memory|video memory|graphics memory|gpu ram)"   # "VRAM: 11"
# After "12GB": these make it the card's memory ...
VRAM_TAIL = r"v-?ram|gpu|card|graphics|video|memory|system ram"
# ... and these make it something else (system RAM, a disk, a file).
NOT_VRAM_TAIL = (r"ram|disk|storage|ssd|hdd|drive|space|data|dataset|file|files|images|photos|pictures|download|"
                 r"upload|model|lora|output|checkpoint|weights")

# --------------------------------------------------------------------------- output size
SIZE_UNIT = {"kb": 1 / 1024, "mb": 1.0, "megabyte": 1.0, "gb": 1024.0, "gigabyte": 1024.0, "gig": 1024.0}
SIZE_CAP = (r"(?:\b(?:under|below|less than|smaller than|at most|no (?:more|bigger|larger) than|"
            r"not (?:more|bigger|larger) than|(?<!\bm[1-5]\s)(?<!\bm[1-5])max(?:imum)?|up to|within|"
            r"limit(?:ed)?(?: of| to| is)?|"
            r"cap(?:ped)?(?: at| of)?)|<=?)")
SMALL_FILE_MB = 200.0   # "a small file to share": LoRA-sized, far below a full checkpoint (2-7 GB)
OUTPUT_SMALL = (
    r"\b(?:small|tiny|light(?:weight)?|compact)\s+(?:file|output|model|lora|download|size)\b|"
    r"\b(?:easy|small enough|light enough) to (?:share|upload|send|download)\b|\bshar(?:e|ing) (?:a )?small\b")
OUTPUT_ANY = (
    r"\b(?:file |output |model )?size (?:doesn't|does not|don't|won't|wont|doesnt) matter\b|"
    r"\bno (?:file |output )?size (?:limit|cap|constraint|restriction)s?\b|"
    r"\b(?:don't|do not|dont) care about (?:the )?(?:file |output |model )?size\b|"
    r"\bsize is (?:not|no) (?:a )?(?:problem|issue|concern)\b|\bany (?:file )?size\b|\bunlimited\b")

# --------------------------------------------------------------------------- GPU time
QUICK_MIN = 20.0   # "something quick"
# (minutes, pattern): time said without a number; a number said outright wins.
TIME_PHRASES: list[tuple[float, str]] = [
    (480.0, r"\b(?:overnight|over night|all night|while i sleep)\b"),
    (2880.0, r"\b(?:a|the|one) (?:whole |full )?weekend\b"),
    (10080.0, r"\b(?:a|one) (?:whole |full )?week\b"),
    (1440.0, r"\b(?:a|one) (?:whole |full )?day\b|\b24/7\b"),
    (240.0, r"\b(?:an|one|the) afternoon\b"),
    (180.0, r"\ba few hours\b"),
    (10.0, r"\ba few minutes\b"),
    (60.0, r"\ban hour\b"),
    (QUICK_MIN, r"\b(?:quick(?:ly)?|asap|as fast as possible|in a hurry)\b(?!\s+(?:question|q|note|one)\b)"),
]
HOUR_UNIT = r"(?:gpu[- ])?(?:h|hrs?|hours?)"
MINUTE_UNIT = r"(?:gpu[- ])?(?:mins?|minutes?)"
DAY_UNIT = r"(?:gpu[- ])?days?"

# --------------------------------------------------------------------------- runs
# Said next to a time, these make it the total over all runs, not the time of one run:
# "2 hours total for 4 tries", "a total of 3 hours", "90 minutes across 3 runs". AFTER is
# matched right where the time ends; BEFORE on the few words just before it.
TOTAL_TIME_AFTER = (r"\s*(?:(?:in )?total|in all|all (?:in|together)|altogether|overall|combined)\b|"
                    r"\s*(?:(?:in )?total\s+)?(?:for|across|over|split (?:over|across|between|into)|"
                    r"spread (?:over|across))\s+(?:all\s+)?(?:the\s+|my\s+|those\s+)?~?\d+\s*"
                    r"(?:training\s+)?(?:runs?|attempts?|tries|trials|experiments?|rounds?|goes)\b")
TOTAL_TIME_BEFORE = (r"\b(?:(?:a |in )?total(?: of| budget(?: of| is)?| gpu time(?: of| is)?| time(?: of| is)?)?|"
                     r"altogether|overall)\s*:?\s*(?:about |around |roughly |~)?$")

# (runs, pattern): a count said without a number; a number said outright wins.
RUNS_PHRASES: list[tuple[int, str]] = [
    (1, r"\bone_shot\b|\bsingle (?:run|shot|try|attempt)\b|\b(?:only|just) once\b|\bonce only\b|"
        r"\b(?:try|train|run) (?:it )?once\b|\b(?:right|work) (?:the )?first time\b|\bno (?:second|2nd) (?:try|chance)\b"),
    (2, r"\btwice\b(?!\s+as)"),
    (3, r"\ba few (?:times|runs|tries|attempts)\b"),
    (10, r"\b(?:many|lots of|plenty of|unlimited|a lot of) (?:times|runs|tries|attempts)\b|"
         r"\bas many (?:times |runs |tries )?as (?:needed|it takes|i need|i want)\b|\b(?:iterate|experiment) (?:a lot|lots)\b"),
]
RUN_NOUNS = r"(?:training\s+)?(?:runs?|attempts?|tries|trials|experiments?|rounds?|goes)"   # "5 tries"
RUN_VERBS = r"(?:try|iterate|train|run|retrain|experiment|tweak|attempt)"                   # "try it 3 times"

# --------------------------------------------------------------------------- base model
BASE_MODEL_PATTERNS: list[tuple[str, str]] = [
    ("sdxl", r"\b(?:sd\s*-?\s*xl|stable[- ]diffusion[- ]xl|xl)\b"),
    ("sd21", r"\b(?:sd\s*-?\s*v?2(?:[.-][01])?|sd21|stable[- ]diffusion[- ]v?2(?:[.-][01])?|v2[.-][01])\b"),
    ("sd15", r"\b(?:sd\s*-?\s*v?1(?:[.-][45])?|sd15|stable[- ]diffusion[- ]v?1(?:[.-][45])?|v1[.-][45])\b"),
]
# A bare "1.5" / "2.1" names a version only when no number is expected ("1.5" hours...).
BARE_VERSIONS = [("sd21", r"(?<![\w.])2\.[01](?![\w.]|\d)"), ("sd15", r"(?<![\w.])1\.5(?![\w.]|\d)")]
# Model families the advisor does not plan for (shared/research/models-2026.md lists who trains them;
# advisor/knowledge/families.py says which of them the trainer trains already).
UNSUPPORTED_BASE = (r"\b(?:sd\s*3(?:\.5)?|stable diffusion 3(?:\.5)?|flux(?:[\s.-]*[12](?![\d.]))?(?:[\s.-]*(?:dev|schnell|"
                    r"kontext|klein|pro))?|klein|qwen[\s-]?image(?:[\s-]*(?:2\.1|edit|layered)(?![\w.]))?|z[\s-]?image|chroma|hidream|lumina\s*2?|sana|kolors|pixart|"
                    r"hunyuan[\s-]?dit|auraflow|kandinsky|sd\s*cascade|stable cascade)\b")
# Image services whose weights are not published: nobody can fine-tune them.
CLOSED_SERVICES = (r"\b(?:midjourney|dall-?e(?:\s*[23])?|google\s+imagen(?:\s*[234])?|imagen\s*[234]|adobe\s+firefly|"
                   r"nano[\s-]?banana)\b")
# Community checkpoints built on a base model the trainer has: (base key, the name people use,
# regex, what else to say). They ship as single .safetensors files (models-2026.md).
COMMUNITY_CHECKPOINTS: list[tuple[str, str, str, str]] = [
    ("sdxl", "Pony Diffusion", r"\bpony\s*(?:diffusion|v?6|xl|realism)\b|\bpony\s+(?:loras?|models?|checkpoints?|base)\b|"
                               r"\b(?:for|on|with|using|based on)\s+pony\b", ""),
    ("sdxl", "Illustrious", r"\billustrious(?:[\s-]?xl)?\b", ""),
    ("sdxl", "NoobAI", r"\bnoob\s*ai(?:[\s-]?xl)?\b",
     " NoobAI's v-prediction release trains with v-prediction and zero terminal SNR, which the trainer reads "
     "from the file when it carries the v_pred / ztsnr keys ComfyUI reads; its epsilon release trains like SDXL."),
    ("sdxl", "Juggernaut XL", r"\bjuggernaut(?:[\s-]?xl)?\b", ""),
    ("sdxl", "Animagine XL", r"\banimagine(?:[\s-]?xl)?\b", ""),
    ("sdxl", "RealVisXL", r"\brealvis[\s-]?xl\b", ""),
    ("sd15", "Realistic Vision", r"\brealistic[\s-]?vision\b", ""),
    ("sd15", "DreamShaper", r"\bdream[\s-]?shaper\b(?![\s-]?xl)", ""),
    ("sd15", "AbsoluteReality", r"\babsolute[\s-]?reality\b", ""),
    ("sd15", "Anything V5", r"\banything[\s-]?v[345]\b", ""),
]
# Video and motion models: this trainer makes image models.
VIDEO = (r"\b(?:video\s+(?:loras?|models?|generation|clips?)|motion\s+loras?|animatediff|wan\s*2(?:\.\d)?|"
         r"hunyuan[\s-]?video|ltx[\s-]?video|(?:video\s+)?clips\s+of|i2v|t2v|text[\s-]to[\s-]video|"
         r"image[\s-]to[\s-]video|animate\s+(?:it|him|her|them|my))\b")

# --------------------------------------------------------------------------- named settings
# Training settings said in words, as trainer users write them (kohya's "network dim", "lr 1e-4",
# "2000 steps", "bs 2", "at 768px"); group v holds the number. Keys are TrainConfig fields
# (profile.SETTING_BOUNDS).
_SET = r"\s*(?:=|:|of|to|at|is|->)?\s*"
_NUM = r"(?P<v>\d+(?:\.\d+)?(?:e-?\d+)?|\.\d+(?:e-?\d+)?)"
# Switches said in words: (setting, value, pattern); the "off" rows come first.
_PRIOR = r"(?:prior[\s_-]*preservation|prior[\s_-]*loss|reg(?:ularization|ularisation)?[\s_-]*(?:images|imgs|set)|class images)"
_TEXT_ENCODER = r"(?:text[\s_-]*encoders?|te\b|clip)"
_CONV_LORA = (r"\b(?:lo[\s-]?cons?|loras?\s+on\s+(?:the\s+)?conv(?:olution(?:al)?)?s?(?:\s+layers)?|"
              r"conv(?:olution(?:al)?)?[\s_-]*(?:loras?|layers\s+too|dim|rank|alpha))\b")
SWITCH_PHRASES: list[tuple[str, bool, str]] = [
    ("prior_preservation", False, r"\b(?:no|without|skip|skipping|turn off|disable|don't use|dont use|do not use|"
                                  r"no need for|not using)\s+(?:the\s+|any\s+)?" + _PRIOR),
    ("prior_preservation", True, r"\b(?:with|use|using|turn on|enable|add|want)\s+(?:the\s+|some\s+)?" + _PRIOR),
    ("train_text_encoder", False, r"\b(?:unet[\s-]only|only (?:train )?the unet|(?:freeze|frozen|don't train|dont train|"
                                  r"do not train|not training|no|without)\s+(?:the\s+)?" + _TEXT_ENCODER + ")"),
    ("train_text_encoder", True, r"\b(?:train(?:ing)?|with|also train|unfreeze)\s+(?:the\s+)?" + _TEXT_ENCODER
                                 + r"(?:\s+too|\s+as well)?"),
    # LoCon (kohya's name; LyCORIS's "lora on the convolutions"): TrainConfig.conv_lora
    ("conv_lora", False, r"\b(?:no|without|skip|not|don't use|dont use|do not use)\s+(?:a\s+|the\s+)?" + _CONV_LORA),
    ("conv_lora", True, _CONV_LORA),
]
_RESOLUTIONS = r"(?:512|576|640|704|768|832|896|960|1024|1152|1280|1536|2048)"
SETTING_PHRASES: list[tuple[str, str]] = [
    ("rank", r"\b(?:network\s*_?\s*)?(?:rank|dim(?:ension)?|net\s*dim)" + _SET + r"(?P<v>\d{1,4})\b"
             r"(?!\s*(?:gb|g|mb|images?|photos?|pics?|pictures?|steps?|minutes?|hours?|px|%))|\br\s*=\s*(?P<v2>\d{1,4})\b"),
    ("lora_alpha", r"\b(?:network\s*_?\s*)?alpha" + _SET + _NUM + r"\b"),
    ("learning_rate", r"\b(?:(?:unet\s+)?learning[\s_-]*rate|lr)" + _SET + _NUM + r"(?![\w.])"),
    ("max_train_steps", r"\b(?P<v>\d{2,6})\s*(?:training\s+|train\s+|total\s+)?steps\b"
                        r"|\b(?:max[\s_]*train[\s_]*steps|steps)" + _SET + r"(?P<v2>\d{2,6})\b"),
    ("train_batch_size", r"\b(?:train[\s_]*)?(?:batch[\s_-]*size|bs|batch)" + _SET + r"(?P<v>\d{1,2})\b"
                         r"(?!\s*(?:images?|photos?|gb))"),
    # "at 768" only for the sizes people train at ("at 1500" may be anything); "768px" and
    # "1024x1024" and "resolution 640" for any number.
    ("resolution", r"\bat\s+(?P<v>" + _RESOLUTIONS + r")\s*(?:px|pixels?)?\b(?!\s*(?:gb|mb|images?|photos?|steps?))"
                   r"|\b(?:resolution|res)\s*(?:of|=|:|at)?\s*(?P<v2>\d{3,4})\b"
                   r"|\b(?P<v3>\d{3,4})\s*(?:px|pixels)\b|\b(?P<v4>\d{3,4})\s*(?:x|\*)\s*\d{3,4}\b"),
]

# Adapter variants (knowledge/lycoris-variants.md): named back, with what the plan does instead.
# DoRA, LoHa and LoKr the trainer trains (TrainConfig.adapter), LoCon too (conv_lora, SWITCH_PHRASES).
ADAPTER_VARIANTS = (r"\b(?P<name>lokr|loha|lycoris|dora|ia3|\(ia\)3|oft|boft|glora)s?\b")

# The user will rent a card and asks which (no card of their own to fit the plan to).
RENT_INTENT = (r"\b(?:which|what)\s+(?:gpu|card|instance|machine)\s+(?:should|do|would|could|shall)\s+(?:i|we)\s+"
               r"(?:rent|use|get|need|pick)|\b(?:going to|gonna|will|want to|planning to|plan to|can)\s+rent\b|"
               r"\brent(?:ing)?\s+(?:a|one|some)\s+(?:cloud\s+)?(?:gpu|card)\b(?!\s+(?:like|such as))|"
               r"\b(?:no|don't have a|dont have a)\s+(?:gpu|card)\s+(?:yet|of my own),?\s+(?:will|i'll|ill)\s+rent\b")

# --------------------------------------------------------------------------- captions
CAPTIONS: list[tuple[bool, str]] = [
    (False, r"\b(?:no|without|not|don't have|do not have|dont have|lack|missing|0)\s+(?:any\s+)?"
            r"(?:captions?|text files?|labels?|descriptions?|tags)\b|\b(?:uncaptioned|not captioned|"
            r"unlabell?ed|not labell?ed|not tagged|untagged)\b"),
    (True, r"\b(?:captioned|labell?ed|tagged)\b|\b(?:with|have|has|including|plus|and)\s+(?:\w+\s+)?"
           r"(?:captions?|text files|descriptions|tags)\b|\bcaptions? (?:files?|for (?:each|every|all))\b|"
           r"\beach (?:image|photo|picture) has a (?:caption|description)\b|"
           r"\bas\s+(?:the\s+|their\s+)?(?:captions?|prompts|labels)\b"),   # "the radiology reports as captions"
]
BARE_YES = r"yes|yeah|yep|y|sure|they do|true|yes they do|all of them"
BARE_NO = r"no|nope|n|none|false|they don't|not really"
BARE_NO_LIMIT = r"no|nope|none|no limit|not really|unlimited|any"

# --------------------------------------------------------------------------- subject
# Word -> class noun (the DreamBooth class: "a photo of sks dog").
ANIMALS = {"cat": "cat", "cats": "cat", "kitty": "cat", "kitten": "cat", "kittens": "cat",
           "dog": "dog", "dogs": "dog", "puppy": "dog", "puppies": "dog", "pup": "dog", "doggo": "dog",
           "horse": "horse", "pony": "horse", "bird": "bird", "parrot": "parrot", "rabbit": "rabbit",
           "bunny": "rabbit", "hamster": "hamster", "guinea pig": "guinea pig", "ferret": "ferret",
           "turtle": "turtle", "tortoise": "tortoise", "lizard": "lizard", "snake": "snake", "fish": "fish",
           "goldfish": "fish", "cow": "cow", "pig": "pig", "goat": "goat", "sheep": "sheep",
           "chicken": "chicken", "duck": "duck", "owl": "owl", "fox": "fox", "pet": "pet", "pets": "pet",
           "animal": "animal", "animals": "animal"}
WOMEN = "wife|girlfriend|gf|mom|mum|mother|sister|grandma|grandmother|aunt|niece|fiancee|woman|lady|bride"
MEN = "husband|boyfriend|bf|dad|father|brother|grandpa|grandfather|uncle|nephew|fiance|man|guy|groom"
OBJECTS = {"sneaker": "sneaker", "sneakers": "sneaker", "shoe": "shoe", "shoes": "shoe", "boots": "boot",
           "mug": "mug", "mugs": "mug", "cup": "cup", "bottle": "bottle", "bag": "bag", "handbag": "handbag",
           "backpack": "backpack", "watch": "watch", "car": "car", "bike": "bicycle", "bicycle": "bicycle",
           "motorcycle": "motorcycle", "toy": "toy", "toys": "toy", "plushie": "plush toy", "plush": "plush toy",
           "teddy bear": "teddy bear", "stuffed animal": "stuffed animal", "chair": "chair", "lamp": "lamp",
           "sofa": "sofa", "guitar": "guitar", "ring": "ring", "necklace": "necklace", "jewelry": "jewelry",
           "jewellery": "jewelry", "hat": "hat", "shirt": "shirt", "t-shirt": "t-shirt", "hoodie": "hoodie",
           "jacket": "jacket", "dress": "dress", "figurine": "figurine", "perfume": "perfume bottle",
           "phone": "phone", "vase": "vase", "candle": "candle", "house": "house", "building": "building",
           "logo": "logo", "mascot": "mascot", "character": "character", "characters": "character",
           "oc": "character", "ocs": "character", "original character": "character",
           "robot": "robot", "glasses": "glasses", "sunglasses": "sunglasses", "furniture": "furniture"}
# Generic words for a thing: they count only when no concrete noun is named, so
# "product shots of our sneaker" is a sneaker.
GENERIC_OBJECTS = {"product": "product", "products": "product", "object": "object", "objects": "object",
                   "item": "object", "items": "object"}
STYLE_NOUNS = {"drawing": "drawing", "drawings": "drawing", "painting": "painting", "paintings": "painting",
               "sketches": "drawing", "illustrations": "illustration", "illustration": "illustration",
               "art": "artwork", "artwork": "artwork", "artworks": "artwork", "comics": "illustration",
               "doodles": "drawing", "renders": "render", "fan art": "artwork", "fanart": "artwork"}
# Between "my"/a count and a style noun ("my 500 captioned anime illustrations"): one word,
# unless it names an animal or object ("my dog drawings" stays about the dog).
_STYLE_FILLER = r"(?:\d+\s+)?(?:(?!(?:" + alts({**ANIMALS, **OBJECTS}) + r")\b)[\w'-]+\s+)?"
# "my wife's handbag": a determiner and one optional word before the noun.
DET = r"(?:my|our|a|an|the|this|these|his|her|their|your|of)\s+(?:[a-z']+\s+)?"

# (subject_type, class_noun or None to look it up in the tables above, pattern).
# The earliest cue in the message wins; on a tie, the longer match.
SUBJECT_CUES: list[tuple[str, str | None, str]] = [
    ("person", "person", r"\b(?:of|like|on|with)\s+me\b|\bme\s+(?:as|in|into|on|at|with|and\s+my)\b|\bmyself\b|"
                         r"\bmy (?:own )?(?:face|likeness|selfies?)\b|\bselfies?\b|\bportraits? of me\b"),
    ("person", "woman", r"\b(?:my|our|a|the|this)\s+(?:[a-z\d]+\s+)?(?:" + WOMEN + r")s?\b(?!')"),
    ("person", "man", r"\b(?:my|our|a|the|this)\s+(?:[a-z\d]+\s+)?(?:" + MEN + r")s?\b(?!')"),
    ("person", "girl", r"\b(?:my|our|a|the)\s+(?:[a-z]+\s+)?(?:daughter|girl)\b(?!')"),
    ("person", "boy", r"\b(?:my|our|a|the)\s+(?:[a-z]+\s+)?(?:son|boy)\b(?!')"),
    ("person", "child", r"\b(?:my|our|a|the)\s+(?:[a-z]+\s+)?(?:kids?|child|children|baby|toddler)\b(?!')"),
    ("person", "person", r"\b(?:my|our|a|the)\s+(?:[a-z]+\s+)?(?:friend|partner|colleague|boss|team|family|"
                         r"grandparents?|parents?|celebrity|influencer)\b(?!')|\b(?:a\s+)?(?:person|people|"
                         r"human|someone|somebody|headshots)\b"),
    ("animal", None, r"\b(?:" + alts(ANIMALS) + r")\b"),
    ("object", None, r"\b" + DET + r"(?:" + alts(OBJECTS) + r")\b"),
    ("style", None, r"\b(?:my|our|his|her|their)\s+(?:own\s+)?" + _STYLE_FILLER + r"(?:" + alts(STYLE_NOUNS) + r")\b|"
                    r"\b\d+\s+" + _STYLE_FILLER + r"(?:drawings|paintings|sketches|illustrations|artworks|renders)\b"),
    ("style", "anime illustration", r"\b(?:anime|manga)\b(?!\s+characters?\b)"),
    ("style", "watercolor painting", r"\bwatercolou?rs?\b"),
    ("style", "painting", r"\boil paintings?\b"),
    ("style", "artwork", r"\b(?:art|artistic|drawing|painting|illustration|visual|anime|manga|comic|cartoon|"
                         r"pixel[- ]art|aesthetic)\s+style\b(?!\s+of)|\b(?:a|an|the|my|our|this|that|own|new|"
                         r"specific|particular|certain)\s+(?:[a-z]+\s+)?style\b(?!\s+of)|\bstyles?\b(?!\s+of)|"
                         r"\bpixel art\b|\bline art\b|\baesthetic\b"),
    ("concept", "concept", r"\bconcepts?\b"),
    ("concept", "pose", r"\bposes?\b"),
    ("concept", None, r"\b(?:gesture|action|facial expression|expression|lighting setup|camera angle|composition)\b"),
]
# The user says a look is what is trained, whatever the pictures show: "300 photos of my city at
# night, i want the look", "a style lora", "as a style". These decide the subject before any noun.
STYLE_INTENT = (r"\b(?:style|look|aesthetic|vibe)\s+(?:loras?|models?|embeddings?|training)\b|\bas\s+a\s+style\b|"
                r"\b(?:want|learn|capture|copy|train|get|keep)\s+(?:just\s+)?(?:the|that|this|its|their|my|our)\s+"
                r"(?:own\s+|overall\s+|visual\s+)?(?:look|aesthetic|vibe|style)\b(?!\s+of\b)")
# Only when no cue above is in the message: "our product", "an item".
GENERIC_SUBJECT_CUES: list[tuple[str, str | None, str]] = [
    ("object", None, r"\b" + DET + r"(?:" + alts(GENERIC_OBJECTS) + r")\b|\bproducts?\b|\bproduct (?:shots|photos)\b"),
]
# A whole dataset rather than one subject; only when no cue above is in the message.
GENERAL_CUES = (r"\bgeneral(?:[- ]purpose)?\b|\beverything\b|"
                r"\btrain(?:ing)?\s+(?:it\s+|the model\s+|sd\s+)?on\s+(?:all\s+(?:of\s+)?)?(?:my|our|the|these|those)\s+"
                r"(?:own\s+|whole\s+|entire\s+)?(?:\d+\s+)?(?:[a-z'-]+\s+)?(?:images|photos|pictures|pics|data|dataset|"
                r"collection|library|archive)\b|\bfine[- ]?tun\w*\s+(?:it\s+|the model\s+|sd\s+)?on\s+"
                r"(?:my|our|a|an|the)\s+(?:own\s+)?(?:[a-z]+\s+)?(?:dataset|data|collection|images)\b|"
                r"\b(?:my|our|a|an|the)\s+(?:own\s+|whole\s+|entire\s+|big\s+|large\s+|huge\s+)?dataset\b|"
                r"\bdomain\b|\bbetter at\b|\bimprove (?:the )?(?:base )?model\b")
# Last resort: "make him look like a knight" is about a person.
PRONOUNS = [("man", r"\b(?:him|he|his)\b"), ("woman", r"\b(?:her|she)\b")]
# One-word answers to "what should the model learn?": word -> (subject_type, class_noun).
BARE_SUBJECT = {"person": ("person", "person"), "people": ("person", "person"), "human": ("person", "person"),
                "animal": ("animal", "animal"), "pet": ("animal", "pet"), "object": ("object", "object"),
                "product": ("object", "product"), "thing": ("object", "object"), "style": ("style", "artwork"),
                "concept": ("concept", "concept"), "general": ("general", None)}

# --------------------------------------------------------------------------- method preference
# (method, pattern): a method the user asks for by name ("I want a LoRA of my dog"). Most
# specific first: "dreambooth lora" must not also read as DreamBooth and as LoRA. Names inside
# a question ("is LoRA better?") are not read: questions are kept apart from statements.
METHOD_PHRASES: list[tuple[str, str]] = [
    ("dreambooth_lora", r"\bdream\s?booth[- ]?loras?\b|\bloras? (?:with |via |using )?dream\s?booth\b|"
                        r"\bdream\s?booth (?:with|using|via) (?:an? )?loras?\b|\bdb[- ]?loras?\b"),
    # "4060 ti" is read as a GPU first; a card missing from the GPU table ("1650 ti") is no TI either
    ("textual_inversion", r"\btextual[- ]inversions?\b|\b(?:ti\s+)?embeddings?\b|(?<!\d )(?<!\d-)\bti\b"),
    ("full_finetune", r"\bful(?:l|ly)[- ]?(?:model\s+)?(?:fine[- ]?tun\w*|training|train|ft)\b|"
                      r"\b(?:fine[- ]?tun\w*|train) (?:the )?(?:whole|entire|full|complete) (?:model|unet|network|"
                      r"checkpoint|thing)\b"),
    ("dreambooth", r"\bdream\s?booth(?:ed|ing)?\b"),
    ("lora", r"\bloras?\b"),
]
# "Any method is fine": clears a stated preference.
NO_METHOD_PREFERENCE = (r"\b(?:any|whichever|whatever) method\b|\bno method preference\b|"
                        r"\bno preference (?:on|for|about) (?:the )?method\b|\byou (?:pick|choose|decide) the method\b|"
                        r"\b(?:don't|do not|dont) care (?:about |which )(?:the )?method\b")
