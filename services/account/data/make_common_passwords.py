"""Generate services/account/data/common_passwords.txt, the passwords the policy refuses as too
common.

Where the list comes from: nowhere but this script. It does not copy any published password
list. It combines a few hundred words and keyboard or digit patterns, written for TwoStep from
the well-known habits that breach studies describe (a dictionary word or a name, then digits,
a year or a "!"; keyboard walks; counting; repeating; swapping letters for look-alike digits),
and keeps the results that are long enough to pass the length rule (12 to 128 characters), so
every entry is one the length rule alone would let through.

Run it from the repository root after changing a word list (a test checks the file is current):

    .venv/bin/python services/account/data/make_common_passwords.py
"""

import itertools
from pathlib import Path

OUTPUT = Path(__file__).with_name("common_passwords.txt")
MIN_LENGTH = 12  # services.account.password_policy.MIN_LENGTH: shorter ones are refused anyway
MAX_LENGTH = 128

WORDS = """
password passwort passcode letmein welcome welcomehome admin administrator root superuser
login access default changeme changeit secret private security guest user username test
tester testing demo sample example master qwerty iloveyou iloveu loveyou ihateyou trustno
whatever nothing anything something everything forever always freedom liberty sunshine
sunflower rainbow butterfly flower flowers princess prince princesa angel angels heaven
blessed blessing faith hope jesus jesuschrist christ believe grace glory monkey dragon
tiger lion eagle falcon shark dolphin panda kitten kitty puppy doggy doggie pussycat
pokemon pikachu superman batman spiderman ironman starwars startrek matrix hunter ranger
killer shadow ninja warrior soldier pirate cowboy wizard merlin gandalf legend champion
winner victory football baseball basketball softball soccer hockey tennis golfer golfing
volleyball cheerleader swimming dancing dancer music guitar piano singer rockstar
computer internet network laptop keyboard mypassword yourpassword thepassword newpassword
oldpassword nopassword passwordpassword chocolate cookie cookies cupcake cheese pepper
banana orange apple cherry strawberry blueberry pumpkin coffee summer winter spring autumn
christmas january february march april june july august september october november
december monday tuesday wednesday thursday friday saturday sunday family children kids
mother father mommy daddy mummy sister brother daughter grandma grandpa baby babygirl
babyboy teacher school classroom daycare childcare preschool kindergarten nursery nanny
parent parents student college university office company business manager money
moneyman million dollar diamond silver golden purple yellow orange green black white
hello hellokitty helloworld goodbye whatsup qwertyuiop asdfghjkl zxcvbnm onlineauth
twostep verification authenticator sunshineearlylearning maplegrove maplegrovepreschool
michael jennifer jessica ashley daniel thomas robert joshua matthew andrew william
charlie jordan taylor hannah samantha elizabeth nicole michelle amanda melissa justin
anthony christopher joseph david james richard brandon jonathan alexander benjamin
liverpool chelsea arsenal manchester barcelona realmadrid juventus yankees cowboys
steelers lakers mustang ferrari corvette harley yamaha mercedes porsche
"""

KEYBOARD = """
qwertyuiop qwertyuiopasdfghjkl asdfghjkl zxcvbnm qwertyasdfgh qwertyasdfghzxcvbn
qazwsxedc qazwsxedcrfv qazwsxedcrfvtgb 1qaz2wsx 1qaz2wsx3edc 1qaz2wsx3edc4rfv zaq12wsx
zaq1xsw2 zaq1zaq1 1qazxsw2 1q2w3e4r 1q2w3e4r5t 1q2w3e4r5t6y 1q2w3e4r5t6y7u8i
q1w2e3r4 q1w2e3r4t5 q1w2e3r4t5y6 poiuytrewq lkjhgfdsa mnbvcxz asdfasdf qwerqwer
qweasdzxc qweasd qwe123 asd123 zxc123 !qaz@wsx !qaz2wsx 1234qwer 1234qwerasdf
qwer1234 asdf1234 zxcv1234 abcd1234 1234abcd
"""

# Endings people add to reach a length rule (besides none at all).
ENDINGS = """
1 12 123 1234 12345 123456 1234567 12345678 123456789 ! !! 1! 12! 123! 1234! !1 !123 @123 #1
01 007 69 99 00 11 22 13 21 321 4321 abc abc123 !@# !@#$
"""
YEARS = [str(year) for year in range(1990, 2031)]
# The handful of words people most often disguise with look-alike characters.
DISGUISED = """
password passwort welcome letmein iloveyou qwerty admin sunshine princess football monkey
dragon master secret
"""
LOOK_ALIKES = {"a": "@", "o": "0", "e": "3", "i": "1", "s": "$"}


def look_alike_forms(word: str) -> set[str]:
    """`word` with every combination of look-alike swaps (p@ssword, passw0rd, p@ssw0rd...)."""
    swaps = [(letter, digit) for letter, digit in LOOK_ALIKES.items() if letter in word]
    forms = set()
    for chosen in itertools.product((False, True), repeat=len(swaps)):
        form = word
        for (letter, digit), swap in zip(swaps, chosen, strict=True):
            if swap:
                form = form.replace(letter, digit)
        forms.add(form)
    return forms


def digit_patterns() -> set[str]:
    """Counting, repeating and mirrored digit strings of usable lengths."""
    found = set()
    counting = "1234567890" * 4
    for start in range(10):
        for length in range(MIN_LENGTH, 21):
            found.add(counting[start : start + length])
            found.add(counting[start : start + length][::-1])
    for digit in "0123456789":
        for length in range(MIN_LENGTH, 21):
            found.add(digit * length)
    blocks = """
    12 123 1234 12345 123456 1212 1122 112233 159357 147258369 789456123 13579 24680 696969
    6969 4200 0000
    """
    for block in blocks.split():
        for times in range(2, 8):
            found.add(block * times)
    for year in YEARS:
        found.add(year * 3)
        found.add(year + year[::-1] + year)
    return found


def letter_patterns() -> set[str]:
    """The alphabet in order and backwards, and one letter repeated."""
    alphabet = "abcdefghijklmnopqrstuvwxyz"
    found = set()
    for start in range(len(alphabet)):
        for length in range(MIN_LENGTH, 27 - start):
            found.add(alphabet[start : start + length])
            found.add(alphabet[start : start + length][::-1])
    for letter in alphabet:
        found.add(letter * MIN_LENGTH)
        found.add(letter * 16)
    return found


def word_patterns(words: list[str]) -> set[str]:
    """Each word with the usual endings and years, and doubled; the most common words also
    in their look-alike forms."""
    found = set()
    disguised = set(DISGUISED.split())
    endings = [""] + ENDINGS.split()
    for word in words:
        forms = look_alike_forms(word) if word in disguised else {word}
        for form in forms:
            for ending in endings:
                found.add(form + ending)
            for year in YEARS:
                found.add(form + year)
                if word in disguised:
                    found.add(form + year + "!")
            found.add(form + form)
            found.add(form + form + "1")
    for first, second in itertools.product(("ilove", "iloveyou", "my"), words):
        found.add(first + second)
        found.add(first + second + "1")
    return found


def generate() -> list[str]:
    """The list, sorted, each entry lower-case and 12 to 128 characters long."""
    words = sorted(set(WORDS.split()))
    candidates = set()
    candidates |= word_patterns(words)
    candidates |= word_patterns(sorted(set(KEYBOARD.split())))
    candidates |= digit_patterns()
    candidates |= letter_patterns()
    return sorted(
        entry
        for entry in {candidate.lower() for candidate in candidates}
        if MIN_LENGTH <= len(entry) <= MAX_LENGTH and not any(ch.isspace() for ch in entry)
    )


def render(entries: list[str]) -> str:
    """The file's text: a header saying where it comes from, then one entry a line."""
    header = [
        "# Common passwords refused by TwoStep's password policy "
        "(services/account/password_policy.py).",
        "# Generated by services/account/data/make_common_passwords.py - do not edit by hand; "
        "change the",
        "# script's word lists and run it again. Not copied from any published list.",
        f"# {len(entries)} entries, lower-case, {MIN_LENGTH}-{MAX_LENGTH} characters.",
    ]
    return "\n".join(header + entries) + "\n"


if __name__ == "__main__":
    entries = generate()
    OUTPUT.write_text(render(entries), encoding="utf-8")
    print(f"Wrote {len(entries)} entries to {OUTPUT}")
