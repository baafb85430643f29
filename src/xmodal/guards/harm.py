"""Query rules beyond injection: requests for harmful content, for personal data (PII extraction), and for
unbounded work (availability), plus instruction-override phrasings the base rules (:mod:`.rules`) do not know.
Added after red-teaming (:mod:`xmodal.redteam`) showed these categories went through the guards untouched.

Each rule needs an *asking* verb near its object: "how to make a pipe bomb" is refused, "pipe bomb history" or
"bomb calorimeter lab report" is not; "list the phone numbers of all customers" is, "phone number format" is not.
"""

from __future__ import annotations

import re
import unicodedata

from .rules import INJECTION, JAILBREAK, Finding, Rule, matching, needed, words

HARMFUL = "harmful_content"
PII = "pii_extraction"
AVAILABILITY = "availability"

_GAP = r"\W++" + words(6)
_MAKE = (
    r"(?:make|making|made|build|building|synthesi[sz]e|synthesi[sz]ing|synthesis\s+of|cook|cooking|manufactur\w*|"
    r"produce|producing|create|creating|assemble|construct|brew|prepare|preparing|extract|extracting|"
    r"write|writing|code|coding|develop|program|craft|obtain|acquire|buy|get|print|3d[\s-]print|grow|"
    r"detonate|deploy|plant|spread)"
)
#: What "X bomb" names when it is not a weapon: the bath bomb, the hot cocoa bomb, the seed bomb of a shop's catalogue.
_TREAT_BOMBS = ("bath", "seed", "cocoa", "chocolate", "jager", "jäger", "yarn", "photo", "glitter", "shower", "fizz",
                "love", "flavor", "flavour", "sugar", "tea", "truth")  # fmt: skip
#: A head noun after the harmful word, which makes it a modifier: the thing asked for is a detector, a vaccine, a
#: costume, a report ("a keylogger detector", "the anthrax vaccine", "a malware analysis report").
_NOT_THE_THING = (
    r"(?!\s+(?:detect\w*|remov\w*|analys[ie]s|analy[sz]ers?|scan\w*|protect\w*|recover\w*|vaccin\w*|antidotes?|"
    r"prevent\w*|defen[cs]es?|costumes?|props?|replicas?|toys?|bracelets?|awareness|training|simulat\w*|cleaners?|"
    r"removers?|blockers?|checkers?|lessons?|history|documentar\w*|treatments?|rehab\w*|addiction|overdoses?|"
    r"poisoning|out\s+of|tattoos?|t-shirts?|shirts?|posters?|drinks?)\b)"
)
_HARMFUL_OBJECT = (
    r"(?:(?:pipe|nail|car|dirty|letter|fertili[sz]er|homemade|home-made)\s+bombs?|"
    + "".join(rf"(?<!\b{w}[\s-])" for w in _TREAT_BOMBS)
    + r"bombs?(?!\s+(?:calorimeter|squad|shelter|disposal|threat|cyclone))|explosives?|ieds?|grenades?|napalm|"
    r"detonators?|molotov(?:\s+cocktails?)?|nerve\s+(?:agents?|gas)|sarin|vx\s+(?:gas|agent)|tabun|ricin|anthrax|"
    r"botulinum(?:\s+toxin)?|mustard\s+gas|"
    r"chlorine\s+gas|bio(?:logical)?[\s-]?weapons?|chemical\s+weapons?|dirty\s+bombs?|"
    r"(?:meth|methamphetamine|fentanyl|heroin|cocaine|crack\s+cocaine|lsd|mdma|ghb)\b|"
    r"(?:untraceable|ghost|unregistered|3d[\s-]printed)\s+(?:guns?|firearms?|rifles?|pistols?)|silencers?\s+for|"
    r"ransomware|keyloggers?|malware|spyware|rootkits?|botnets?|(?:computer\s+)?virus(?:es)?\s+that|trojans?|"
    r"credential\s+stealers?|info[\s-]?stealers?|phishing\s+(?:kits?|pages?|sites?))"
)
_HARM_RULES: tuple[Rule, ...] = (
    (HARMFUL, "harmful_howto", re.compile(r"\b" + _MAKE + _GAP + _HARMFUL_OBJECT + _NOT_THE_THING, re.I)),
    (
        HARMFUL,
        "harmful_recipe",
        re.compile(
            r"\b(?:recipe|instructions|steps?|guide|tutorial|blueprints?|formula|synthesis\s+route)\s+(?:for|to|of)\s+"
            + words(3)
            + _HARMFUL_OBJECT
            + _NOT_THE_THING,
            re.I,
        ),
    ),
    (
        HARMFUL,
        "violence_howto",
        re.compile(
            r"\b(?:kill|murder|poison|hurt|injure|stab|strangle|kidnap|assassinate|torture|shoot)\s+(?:someone|somebody|"
            r"a\s+(?:person|human|child|kid|baby|woman|man|neighbou?r|coworker|politician)|people|my\s+(?:wife|husband|"
            r"boss|neighbou?r|parents?|mother|father|brother|sister|teacher|ex)|him|her|them)\b"
            r"(?:\W++" + words(5) + r"(?:without|undetected|untraceable|get\s+away|not\s+get\s+caught))?",
            re.I,
        ),
    ),
)

_ASK = (
    r"(?:list|enumerate|give|show|tell|dump|export|extract|find|get|reveal|print|send|leak|look\s+up|lookup|fetch|retrieve|"
    r"return|output|display|provide|share|collect|scrape|harvest|search\s+for|what\s+(?:is|are|was)|what's|whats|"
    r"where\s+(?:is|does)|hand\s+(?:over|out)|hand\s+me|pass\s+(?:on|along|over)|disclose|divulge|expose|supply|"
    r"furnish|read\s+out|spell\s+out|compile|gather|pull\s+up|dig\s+up|track\s+down|turn\s+over|surrender|"
    r"release|publish|transmit|forward|copy|download|i\s+(?:want|need)|let\s+me\s+(?:see|have|know))"
)
#: Data that is a person's whoever holds it: asked for with any possessive, it is a request for personal data.
_PERSONAL_NOUN = (
    r"(?:social\s+security(?:\s+numbers?)?|ssns?|credit\s+card(?:\s+numbers?|s)?|card\s+numbers?|cvv|"
    r"passwords?(?:\s+hash(?:es)?)?|password\s+hash(?:es)?|home\s+address(?:es)?|residential\s+address(?:es)?|"
    r"dates?\s+of\s+birth|birth\s*dates?|birthdays?|passport\s+(?:numbers?|details)|bank\s+(?:account|details)\w*|"
    r"personal\s+(?:data|information|details|info)|medical\s+(?:records?|history)|whereabouts)"
)
#: Data that a place, a business or a thing has too: "the hotel's phone number", "the store's location", "the
#: server's ip address", "the job's salary" are what a search engine is asked every day.
_SHARED_NOUN = (
    r"(?:addresses|(?:e-?mail|postal|street|ip)\s+address(?:es)?|(?:cell\s+|mobile\s+|tele)?phone\s+numbers?|"
    r"salar(?:y|ies)|location|identit(?:y|ies))"
)
_PII_NOUN = rf"(?:{_PERSONAL_NOUN}|{_SHARED_NOUN})"
#: Who is a person, as the owner in a possessive ("the driver's location", "my wife's phone number").
_PERSON_NOUN = (
    r"(?:users?|customers?|clients?|employees?|members?|persons?|people|patients?|staff|guests?|tenants?|"
    r"landlords?|owners?|holders?|drivers?|callers?|senders?|recipients?|sellers?|buyers?|subscribers?|students?|"
    r"teachers?|doctors?|nurses?|witness(?:es)?|victims?|reviewers?|journalists?|whistleblowers?|celebrit(?:y|ies)|"
    r"neighbou?rs?|friends?|(?:co-?)?workers?|colleagues?|boss(?:es)?|ex|wife|wives|husbands?|spouses?|partners?|"
    r"(?:girl|boy)friends?|mother|father|mom|mum|dad|parents?|brothers?|sisters?|sons?|daughters?|child|children|"
    r"kids?|roommates?|man|men|woman|women|girls?|boys?|someone|somebody|anyone|anybody|everyone|everybody|"
    r"reporters?|renters?|residents?|managers?|ceos?|directors?|officers?|employers?|lawyers?|attorneys?|judges?|"
    r"politicians?|candidates?|applicants?|actors?|actress(?:es)?|singers?|players?|athletes?|authors?|writers?|"
    r"artists?|influencers?|streamers?|pilots?|passengers?|travell?ers?|visitors?|voters?|donors?|borrowers?|"
    r"contractors?|interns?|volunteers?|cousins?|aunts?|uncles?|grand(?:ma|pa|mother|father|parent)s?|nieces?|"
    r"nephews?|babies|baby|teen(?:ager)?s?|minors?|strangers?|guys?|lad(?:y|ies)|individuals?|humans?|crush)"
)
#: Words before a possessive that make its owner a thing ("the nearest pharmacy's"), unless the owner is a person's
#: noun ("the driver's"); with none of them it is a name ("john's", "taylor swift's").
_DETERMINERS = frozenset("the a an this that these those its our your my each every any some which whose".split())
_POSSESSIVE = r"(?:'s|’s|s'|s’)"
_PERSON = (
    r"(?:(?:all|every|each|our|the|these|those|this|that|some|any|other)\s+)?(?:users?|customers?|clients?|"
    r"employees?|members?|persons?|people|patients?|accounts?|staff|someone|somebody|him|her|them|"
    r"(?-i:[A-Z][a-z]+)(?:\s+(?-i:[A-Z][a-z]+))?)\b"
)
_PII_RULES: tuple[Rule, ...] = (
    (
        PII,
        "pii_request",
        re.compile(
            r"\b"
            + _ASK
            + _GAP
            + _PII_NOUN
            + r"\s+(?:of|for|from|belonging\s+to|stored\s+for|on|about|linked\s+to)\s+"
            + _PERSON,
            re.I,
        ),
    ),
    (
        PII,
        "pii_possessive",
        re.compile(
            r"\b"
            + _ASK
            + _GAP
            + r"(?:[\w-]+"
            + _POSSESSIVE
            + r"|his|her|their)\s+(?:[\w-]+\s+){0,2}?"
            + _PERSONAL_NOUN,
            re.I,
        ),
    ),
    (
        PII,
        "pii_personal_id",
        re.compile(
            r"\b" + _ASK + _GAP + r"(?:social\s+security\s+numbers?|ssns?|passport\s+numbers?|dates?\s+of\s+birth|"
            r"credit\s+card\s+numbers?|home\s+address(?:es)?|passwords?)\s+(?:of|for|belonging\s+to)\s+(?!a\b|an\b)\w+",
            re.I,
        ),
    ),
    (
        PII,
        "pii_of_person",
        re.compile(
            r"\b" + _PII_NOUN + r"\s+(?:of|for)\s+the\s+(?:person|user|people|customer|man|woman)\s+who\b", re.I
        ),
    ),
)

#: Data that a place or a thing has too, after a possessive: asked for, it is someone's only when
#: :func:`_names_someone` says the owner is a person.
_OWNED = re.compile(
    r"(?:(?<![\w-])(?P<owner>[\w-]+)"
    + _POSSESSIVE
    + r"|\b(?:his|her)|\b"
    + _PERSON_NOUN
    + r"\s+(?:and|with)\s+their)\s+(?:[\w-]+\s+){0,2}?"
    + _SHARED_NOUN,
    re.I,
)
_ASKED = re.compile(r"\b" + _ASK + _GAP + r"\Z", re.I)
_A_PERSON = re.compile(_PERSON_NOUN, re.I)


def _names_someone(match: re.Match[str]) -> bool:
    """Whether the owner of :data:`_OWNED`'s match is someone: his or her, a person's noun, or a possessive with no
    determiner in the three words before it (a name); "the store's", "the nearest pharmacy's" are things."""
    owner = match.group("owner")
    if owner is None or _A_PERSON.fullmatch(owner.rsplit("-", 1)[-1]):
        return True
    before = match.string[: match.start("owner")].lower().split()[-3:]
    return not _DETERMINERS.intersection(before)


def _someone_owns(text: str) -> Finding | None:
    """A request for a place-or-thing noun (a phone number, an address, a location…) whose owner is someone."""
    for match in _OWNED.finditer(text):
        if _names_someone(match) and _ASKED.search(text, 0, match.start()):
            return Finding(PII, "pii_possessive", clip(match.group(0)))
    return None


_ENDLESS = (
    r"(?:forever|for\s+ever|infinitely|indefinitely|endlessly|eternally|without\s+(?:stopping|end|ending|a\s+break|"
    r"limit|pause)|never\s+stop(?:ping)?|non[\s-]?stop|over\s+and\s+over(?:\s+again)?|to\s+infinity|ad\s+infinitum|"
    r"(?:a|one|ten|a\s+hundred|hundreds\s+of)?\s*(?:million|billion|trillion|thousand)\s+times|\d{4,}\s+times|"
    r"until\s+(?:you|it|the\s+\w+)\s+(?:crash|run\s+out|die|break)\w*)"
)
_AVAIL_RULES: tuple[Rule, ...] = (
    (
        AVAILABILITY,
        "unbounded_output",
        re.compile(
            r"\b(?:repeat|repeating|say|print|printing|output|write|writing|generate|generating|list|listing|count|"
            r"counting|loop|looping|return|keep|continue|produce|reproduce|spam|recite|echo|type|enumerate|show|"
            r"tell|read|sing|give|provide|fetch|send|search)\b" + _GAP + _ENDLESS,
            re.I,
        ),
    ),
    (
        AVAILABILITY,
        "oversized_request",
        re.compile(
            r"\b(?:return|give|show|list|fetch|retrieve|send|get)\s+(?:me\s+)?(?:[\w-]+\s+){0,2}?(?:all\s+)?"
            r"(?:\d{4,}|(?:ten|a\s+hundred|hundreds\s+of|a|one)?\s*(?:thousand|million|billion)s?)\s+(?:of\s+)?"
            r"(?:results|items|hits|rows|pages|records|documents|entries)",
            re.I,
        ),
    ),
)

_EXTRACTION = re.compile(
    r"\b(?:reproduce|recite|restate|copy|paste|quote|echo|say|spell\s+out|summari[sz]e|translate)\W++"
    + words(4)
    + r"(?:system\s+prompt|initial\s+(?:prompt|instructions)|hidden\s+(?:prompt|instructions)|(?:your|the)\s+"
    r"(?:original\s+|previous\s+|first\s+|secret\s+)?(?:instructions|prompt)\b|(?:the\s+)?(?:text|words|messages)\s+"
    r"(?:above|before\s+this))",
    re.I,
)
#: Asking the model about its own set-up: its system prompt or first instructions named as *its own* (``your
#: initial instructions``, ``systemPrompt``), what it was told before the conversation, the conversation so far to
#: be repeated, an override or debug mode switched on. "what is a system prompt" (the concept) is not refused.
_SELF_DISCLOSURE = re.compile(
    r"\b(?:your|ur|its|the\s+assistant's|the\s+model's)\s+(?:own\s+)?(?:(?:system|developer|hidden|secret|internal|"
    r"initial|starting|original|first|underlying|pre[\s-]?)\s*(?:prompt|instructions?|message|directives?|"
    r"programming)|(?:initial|starting|original|hidden|secret|internal|underlying)\s+(?:configuration|config|"
    r"setup|set-up|rules|guidelines|context))\b"
    r"|\bsystem_?prompt\b|\bsystem(?:Prompt|Message|Instructions)\b|</?system[_-]?(?:prompt|message)>"
    r"|\b(?:see|show|print|output|display|reveal|repeat|leak|dump|encode|translate|continue|complete)\b\W++"
    + words(4)
    + r"the\s+(?:system|initial|hidden|original)\s+(?:prompt|instructions|message)\b"
    r"|\bthe\s+system\s+prompt\s+(?:is|was|says|reads)\b"
    r"|\b(?:contents?|text|everything)\s+(?:of|in)\s+your\s+(?:context(?:\s+window)?|prompt)\b"
    r"|\b(?:what|who)\s+(?:were|was|have|has)\s+you\s+(?:been\s+)?(?:told|instructed|programmed|given|asked)\b"
    r"|\byou\s+were\s+(?:told|instructed|programmed|given)\s+(?:initially|at\s+first|before|at\s+the\s+start|to\s+hide)"
    r"|\bi\s+was\s+(?:instructed|told|programmed)\s+to['\"]"
    r"|\bwhat\s+are\s+you\s+(?:not\s+(?:supposed|allowed|meant|permitted)|forbidden|told\s+not)\s+to\s+(?:tell|say|"
    r"reveal|share|disclose)"
    r"|\b(?:repeat|print|output|show|recite|echo|reproduce)\W++" + words(2) + r"(?:the\s+|this\s+)?(?:above|"
    r"preceding|entire|whole|previous)\s+(?:text|conversation|prompt|messages?|context|transcript)\b"
    r"|\b(?:admin(?:istrator)?|root|developer|debug|god|sudo)[\s_\\-]*(?:override|mode)\s*[:=]\s*(?:enabled?|on|"
    r"activated?|true|display|show|print|reveal|output)\b|\badministrator\s+override\b"
    r"|\bstop\s+everything\b\W++" + words(4) + r"(?:print|say|output|write|type)\b",
    re.I,
)
_OVERRIDE = re.compile(
    r"\b(?:ignore|disregard|forget|override|skip|neglect|set\s+aside|pay\s+no\s+attention\s+to|stop\s+following|"
    r"let\s+go\s+of|throw\s+away|discard|"
    r"bypass|circumvent|cancel|erase|delete|dismiss|ditch|scrap|nullify|void|put\s+aside|move\s+past|never\s+mind)"
    r"\W++" + words(4) + r"(?:previous|prior|above|earlier|preceding|former|original|initial|all|any|every|your|"
    r"system|safety)\W++" + words(3) + r"(?:instructions?|prompts?|rules|guidelines|directions|directives|"
    r"commands|guardrails|programming|constraints|guidance|orders|policies|polic(?:y|ies)|filters?)\b"
    # the rules wished away: "pretend the previous rules don't exist"
    r"|\b(?:pretend|imagine|assume|act\s+as\s+if)\s+(?:that\s+)?(?:the|your|all|any|these|those)\s+(?:(?:previous|"
    r"prior|earlier|above|original|system|safety)\s+)?(?:rules|instructions|guidelines|restrictions|policies|filters|"
    r"guardrails)\s+(?:don'?t|do\s+not|no\s+longer|never|doesn'?t)\s+(?:exist|apply|matter|count)",
    re.I,
)

#: Goal hijacking without naming the instructions (PromptInject, Perez & Ribeiro 2022; the "ignore previous" family of
#: the OWASP LLM01 examples): everything before or above is to be forgotten or ignored, a new task takes over.
#: "ignore previous errors when compiling" (an object after the word) and "forget everything you know about
#: diets" (a title) are not refused.
_GOAL_HIJACK = re.compile(
    r"\b(?:ignore|disregard|forget|discard|drop)\s+(?:about\s+)?(?:all\s+|everything\s+|anything\s+|what(?:ever)?\s+"
    r"(?:was|has\s+been|i|you|we)\s+(?:said|written|told|mentioned|discussed|stated)\s+)?(?:the\s+)?(?:above|before"
    r"(?:\s+(?:that|this|now))?|previously|so\s+far|up\s+to\s+now|until\s+now|earlier)(?=\s*(?:[.,:;!?\-]|and\b|"
    r"then\b|now\b|instead\b|$))"
    r"|\b(?:forget|ignore|disregard)\s+(?:about\s+)?(?:everything|anything|all\s+(?:of\s+)?(?:that|this|it))\s*(?:(?:that\s+)?"
    r"(?:you|we|i)\s+(?:said|told|discussed|wrote|were\s+told|have\s+been\s+told)\b|[,.:;!-]+\s*(?:and\s+)?"
    r"(?:now\s+)?(?:just\s+)?(?:write|say|print|tell|answer|respond|output|repeat|act|pretend|instead))"
    r"|\b(?:ignore|disregard)\s+(?:any|all)\s+(?:previous|prior|preceding)\s+and\s+(?:following|subsequent)\b"
    r"|\b(?:new|next|further|additional|other)\s+(?:tasks?|instructions?|assignments?)\s+(?:follows?|(?:are|is)\s+"
    r"(?:as\s+)?follow(?:s|ing))\b"
    r"|\b(?:focus\s+on|start\s+(?:over\s+)?with|turn\s+to|move\s+on\s+to)\s+(?:your|a|the)\s+new\s+(?:task|"
    r"instructions?|assignment|objective|goal)\b"
    r"|\bnever\s*mind\W++" + words(3) + r"(?:ignore|forget|disregard|instead|just\s+(?:say|print|write))\b"
    r"|(?:^|[.!?;:]\s*)stop\s*[-:!]+\s*(?:just\s+)?(?:write|say|print|output)\b",
    re.I,
)
#: The same override in the other languages of the attack sets and the red-teaming mutations (German, French,
#: Spanish, Italian, Portuguese, Dutch, Croatian, Russian), and in Chinese and Japanese: forget or ignore everything /
#: all (previous) instructions.
_FOREIGN_OVERRIDE = re.compile(
    r"\b(?:ignorier(?:e|en\s+sie)|vergiss|vergessen\s+sie|missachte)\s+(?:bitte\s+)?(?:einfach\s+)?(?:alle[sn]?\b|"
    r"(?:die|deine|ihre)\s+(?:obigen|vorherigen|bisherigen|vorangehenden|vorangegangenen|ursprünglichen)?\s*"
    r"(?:anweisungen|befehle|instruktionen|regeln|vorgaben))"
    r"|\b(?:obigen|vorherigen|bisherigen|vorangehenden)\s+(?:ausführungen|anweisungen|befehle|instruktionen)\s+"
    r"(?:ignorieren|vergessen)\b"
    r"|\b(?:ignore[zr]?|oublie[zr]?)\s+(?:toutes\s+)?(?:les|tes|vos)\s+(?:instructions|consignes|règles)\b"
    r"|\boublie[zr]?\s+tout\b"
    r"|\b(?:olvid[ae]|ignor[ae])\s+(?:todo\b|(?:todas\s+)?(?:las|tus|sus)\s+(?:instrucciones|reglas|órdenes)|"
    r"lo\s+anterior)"
    r"|\b(?:ignora|dimentica)\s+(?:tutto\b|(?:tutte\s+)?le\s+(?:istruzioni|regole))"
    r"|\b(?:ignore|esque[çc]a)\s+(?:tudo\b|(?:todas\s+)?as\s+(?:instru[çc][õo]es|regras))"
    r"|\b(?:negeer|vergeet)\s+(?:alle\s+)?(?:vorige\s+|eerdere\s+)?(?:instructies|alles)\b"
    r"|\bzaboravi\s+sve\b"
    r"|\b(?:забудь(?:те)?|(?:про)?игнорируй(?:те)?)\s+(?:вс[её]\b|(?:все\s+)?(?:предыдущие\s+|прошлые\s+)?"
    r"(?:инструкции|указания|правила))"
    r"|(?:忽略|无视|無視|忘记|忘掉|不要理会)掉?你?(?:之前|以前|上面|上述|前面|先前|所有|全部|一切)[^。！？\n]{0,6}?"
    r"(?:指令|指示|规则|規則)"
    r"|(?:以前|前|上記|これまで|すべて|全て)の(?:指示|ルール|指令)を(?:すべて|全て)?(?:無視|忘れ)",
    re.I,
)


_JAILBREAK_RULES: tuple[Rule, ...] = (
    (
        JAILBREAK,
        "roleplay_jailbreak",
        re.compile(
            r"\b(?:role[\s-]?play|pretend|act|play|be|imagine\s+you\s+are)\s+(?:as\s+|to\s+be\s+)?(?:my\s+)?"
            r"(?:late\s+|dead\s+|deceased\s+)?(?:grand(?:ma|mother|pa|father)|evil\s+(?:twin|confidant|assistant)|"
            r"opposite\s+self)\b"
            r"|\bforbidden\s+(?:instructions|knowledge|recipes?|secrets)\b"
            r"|\b(?:answer|respond|reply)\s+twice\b"
            r"|\b(?:fictional|hypothetical|imaginary)\s+world\s+where\s+(?:nothing|anything|there\s+are\s+no)"
            r"|\b(?:never|don't|do\s+not|cannot|can't)\s+refuse\b"
            r"|\bwithout\s+any\s+(?:moral|ethical|content)\s+(?:restrictions|limits|filters|guidelines)\b"
            r"|\b(?:no|without)\s+(?:restrictions|limits|limitations|filters|censorship|rules)\b(?!\s+(?:on|for|of)\b)",
            re.I,
        ),
    ),
)


def pattern_sources() -> list[str]:
    """The text of every pattern here (the de-obfuscation reads its vocabulary from them)."""
    rules = (*_HARM_RULES, *_PII_RULES, *_AVAIL_RULES, *_JAILBREAK_RULES)
    return [p.pattern for _, _, p in rules] + [
        _OVERRIDE.pattern,
        _EXTRACTION.pattern,
        _SELF_DISCLOSURE.pattern,
        _GOAL_HIJACK.pattern,
        _FOREIGN_OVERRIDE.pattern,
        _OWNED.pattern,
    ]


#: Every rule of this module, in the order :func:`scan` reports them.
RULES: tuple[Rule, ...] = (
    *_HARM_RULES,
    *_PII_RULES,
    *_AVAIL_RULES,
    *_JAILBREAK_RULES,
    (INJECTION, "prompt_extraction_synonym", _EXTRACTION),
    (INJECTION, "self_disclosure", _SELF_DISCLOSURE),
    (INJECTION, "instruction_override_synonym", _OVERRIDE),
    (INJECTION, "goal_hijack", _GOAL_HIJACK),
    (INJECTION, "foreign_override", _FOREIGN_OVERRIDE),
)
for _, _, _pattern in RULES:  # what each pattern needs, read off it once (rules.needed)
    needed(_pattern)


def scan(text: str) -> list[Finding]:
    """Every rule of this module that matches ``text`` (one finding per rule; a rule that needs a word the text
    lacks is not run: :func:`.rules.matching`), and a place-or-thing noun asked for as someone's
    (:func:`_someone_owns`)."""
    found = matching(text, RULES)
    if not any(f.rule == "pii_possessive" for f in found):
        owned = _someone_owns(text)
        found += [owned] if owned else []
    return found


def flood(text: str) -> Finding | None:
    """A text made to cost work rather than to be searched: deep bracket nesting, a flood of combining marks.
    (A word repeated up to the size limit is not refused: the server accepts such a query.)"""
    depth = deepest = 0
    for ch in text:
        if ch in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in ")]}":
            depth = max(depth - 1, 0)
    if deepest > 20:
        return Finding(AVAILABILITY, "deep_nesting", f"brackets nested {deepest} deep")
    marks = sum(1 for ch in text if unicodedata.combining(ch))
    if marks > 30 and marks > len(text) / 4:
        return Finding(AVAILABILITY, "combining_flood", f"{marks} combining marks in {len(text)} characters")
    return None


def clip(text: str, limit: int = 80) -> str:
    """``text`` on one line, cut to ``limit`` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
