"""Flores-200 language codes: SIB-200's 205 languages, their scripts, which of them the encoder was pretrained on,
and the fixed language sets of the SIB-200 study.

A code is `{ISO 639-3}_{ISO 15924 script}` ("swh_Latn", "zho_Hans"), exactly as Flores-200, SIB-200 and NLLB write it
(it is also NLLB's `src_lang` tag), so SIB-200 keeps these codes as its language ids instead of mapping them to the
ISO 639-1 codes of the other benchmarks: most of the 205 languages have no 639-1 code, and several differ only in
script (`arb_Arab` / `arb_Latn`, `zho_Hans` / `zho_Hant`).

`python -m layalign.data.flores` prints every code with its script and encoder coverage.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

FLORES_CODE = re.compile(r"[a-z]{3}_[A-Z][a-z]{3}")  # ISO 639-3 + "_" + ISO 15924 script

# the 205 language folders of SIB-200 (dadelani/sib-200 @593cea88, data/annotated/), sorted
SIB200_LANGUAGES: tuple[str, ...] = (
    "ace_Arab", "ace_Latn", "acm_Arab", "acq_Arab", "aeb_Arab", "afr_Latn", "ajp_Arab", "aka_Latn", "als_Latn",
    "amh_Ethi", "apc_Arab", "arb_Arab", "arb_Latn", "ars_Arab", "ary_Arab", "arz_Arab", "asm_Beng", "ast_Latn",
    "awa_Deva", "ayr_Latn", "azb_Arab", "azj_Latn", "bak_Cyrl", "bam_Latn", "ban_Latn", "bel_Cyrl", "bem_Latn",
    "ben_Beng", "bho_Deva", "bjn_Arab", "bjn_Latn", "bod_Tibt", "bos_Latn", "bug_Latn", "bul_Cyrl", "cat_Latn",
    "ceb_Latn", "ces_Latn", "cjk_Latn", "ckb_Arab", "crh_Latn", "cym_Latn", "dan_Latn", "deu_Latn", "dik_Latn",
    "dyu_Latn", "dzo_Tibt", "ell_Grek", "eng_Latn", "epo_Latn", "est_Latn", "eus_Latn", "ewe_Latn", "fao_Latn",
    "fij_Latn", "fin_Latn", "fon_Latn", "fra_Latn", "fur_Latn", "fuv_Latn", "gaz_Latn", "gla_Latn", "gle_Latn",
    "glg_Latn", "grn_Latn", "guj_Gujr", "hat_Latn", "hau_Latn", "heb_Hebr", "hin_Deva", "hne_Deva", "hrv_Latn",
    "hun_Latn", "hye_Armn", "ibo_Latn", "ilo_Latn", "ind_Latn", "isl_Latn", "ita_Latn", "jav_Latn", "jpn_Jpan",
    "kab_Latn", "kac_Latn", "kam_Latn", "kan_Knda", "kas_Arab", "kas_Deva", "kat_Geor", "kaz_Cyrl", "kbp_Latn",
    "kea_Latn", "khk_Cyrl", "khm_Khmr", "kik_Latn", "kin_Latn", "kir_Cyrl", "kmb_Latn", "kmr_Latn", "knc_Arab",
    "knc_Latn", "kon_Latn", "kor_Hang", "lao_Laoo", "lij_Latn", "lim_Latn", "lin_Latn", "lit_Latn", "lmo_Latn",
    "ltg_Latn", "ltz_Latn", "lua_Latn", "lug_Latn", "luo_Latn", "lus_Latn", "lvs_Latn", "mag_Deva", "mai_Deva",
    "mal_Mlym", "mar_Deva", "min_Arab", "min_Latn", "mkd_Cyrl", "mlt_Latn", "mni_Beng", "mos_Latn", "mri_Latn",
    "mya_Mymr", "nld_Latn", "nno_Latn", "nob_Latn", "npi_Deva", "nqo_Nkoo", "nso_Latn", "nus_Latn", "nya_Latn",
    "oci_Latn", "ory_Orya", "pag_Latn", "pan_Guru", "pap_Latn", "pbt_Arab", "pes_Arab", "plt_Latn", "pol_Latn",
    "por_Latn", "prs_Arab", "quy_Latn", "ron_Latn", "run_Latn", "rus_Cyrl", "sag_Latn", "san_Deva", "sat_Olck",
    "scn_Latn", "shn_Mymr", "sin_Sinh", "slk_Latn", "slv_Latn", "smo_Latn", "sna_Latn", "snd_Arab", "som_Latn",
    "sot_Latn", "spa_Latn", "srd_Latn", "srp_Cyrl", "ssw_Latn", "sun_Latn", "swe_Latn", "swh_Latn", "szl_Latn",
    "tam_Taml", "taq_Latn", "taq_Tfng", "tat_Cyrl", "tel_Telu", "tgk_Cyrl", "tgl_Latn", "tha_Thai", "tir_Ethi",
    "tpi_Latn", "tsn_Latn", "tso_Latn", "tuk_Latn", "tum_Latn", "tur_Latn", "twi_Latn", "tzm_Tfng", "uig_Arab",
    "ukr_Cyrl", "umb_Latn", "urd_Arab", "uzn_Latn", "vec_Latn", "vie_Latn", "war_Latn", "wol_Latn", "xho_Latn",
    "ydd_Hebr", "yor_Latn", "yue_Hant", "zho_Hans", "zho_Hant", "zsm_Latn", "zul_Latn",
)

# The encoder's pretraining languages. multilingual-e5-small starts from Microsoft's Multilingual-MiniLM, which uses
# XLM-R's tokenizer and was distilled on XLM-R's data: the 100 CC-100 languages of Conneau et al. 2020 ("Unsupervised
# Cross-lingual Representation Learning at Scale", ACL 2020, Table 6; also the XLM-R README). E5's own contrastive
# stages add mostly those languages again, so CC-100 is the conservative statement of what the encoder has seen.
# Source: that table's ISO codes, mapped here to the Flores-200 code of the same language and script. Mapping choices
# (one Flores code per CC-100 language, the standard variety; a related variety Flores lists separately is counted
# as not seen, since the encoder saw it only as far as it resembles the standard one):
# ar -> arb_Arab only (not the 8 dialects acm/acq/aeb/ajp/apc/ars/ary/arz, nor Arabic in Latin script arb_Latn);
# az -> azj_Latn (North, Latin script; not azb_Arab); fa -> pes_Arab (not Dari prs_Arab); ku -> kmr_Latn (Kurmanji,
# Latin; not Sorani ckb_Arab); lv -> lvs_Latn (not Latgalian ltg_Latn); mg -> plt_Latn; mn -> khk_Cyrl;
# ms -> zsm_Latn; my and my_zaw (Zawgyi-encoded Burmese) -> mya_Mymr; ne -> npi_Deva; no -> nob_Latn (Bokmal; not
# nno_Latn); om -> gaz_Latn; ps -> pbt_Arab; sq -> als_Latn; sr -> srp_Cyrl; sw -> swh_Latn; uz -> uzn_Latn;
# yi -> ydd_Hebr; zh -> zho_Hans; zh-Hant -> zho_Hant (not Cantonese yue_Hant).
# CC-100 languages with no Flores-200 code in SIB-200: br (Breton), fy (Frisian), la (Latin) and the five romanized
# ones (bn_rom, hi_rom, ta_rom, te_rom, ur_rom).
XLMR_CC100: dict[str, str | None] = {
    "af": "afr_Latn", "am": "amh_Ethi", "ar": "arb_Arab", "as": "asm_Beng", "az": "azj_Latn", "be": "bel_Cyrl",
    "bg": "bul_Cyrl", "bn": "ben_Beng", "bn_rom": None, "br": None, "bs": "bos_Latn", "ca": "cat_Latn",
    "cs": "ces_Latn", "cy": "cym_Latn", "da": "dan_Latn", "de": "deu_Latn", "el": "ell_Grek", "en": "eng_Latn",
    "eo": "epo_Latn", "es": "spa_Latn", "et": "est_Latn", "eu": "eus_Latn", "fa": "pes_Arab", "fi": "fin_Latn",
    "fr": "fra_Latn", "fy": None, "ga": "gle_Latn", "gd": "gla_Latn", "gl": "glg_Latn", "gu": "guj_Gujr",
    "ha": "hau_Latn", "he": "heb_Hebr", "hi": "hin_Deva", "hi_rom": None, "hr": "hrv_Latn", "hu": "hun_Latn",
    "hy": "hye_Armn", "id": "ind_Latn", "is": "isl_Latn", "it": "ita_Latn", "ja": "jpn_Jpan", "jv": "jav_Latn",
    "ka": "kat_Geor", "kk": "kaz_Cyrl", "km": "khm_Khmr", "kn": "kan_Knda", "ko": "kor_Hang", "ku": "kmr_Latn",
    "ky": "kir_Cyrl", "la": None, "lo": "lao_Laoo", "lt": "lit_Latn", "lv": "lvs_Latn", "mg": "plt_Latn",
    "mk": "mkd_Cyrl", "ml": "mal_Mlym", "mn": "khk_Cyrl", "mr": "mar_Deva", "ms": "zsm_Latn", "my": "mya_Mymr",
    "my_zaw": "mya_Mymr", "ne": "npi_Deva", "nl": "nld_Latn", "no": "nob_Latn", "om": "gaz_Latn", "or": "ory_Orya",
    "pa": "pan_Guru", "pl": "pol_Latn", "ps": "pbt_Arab", "pt": "por_Latn", "ro": "ron_Latn", "ru": "rus_Cyrl",
    "sa": "san_Deva", "sd": "snd_Arab", "si": "sin_Sinh", "sk": "slk_Latn", "sl": "slv_Latn", "so": "som_Latn",
    "sq": "als_Latn", "sr": "srp_Cyrl", "su": "sun_Latn", "sv": "swe_Latn", "sw": "swh_Latn", "ta": "tam_Taml",
    "ta_rom": None, "te": "tel_Telu", "te_rom": None, "th": "tha_Thai", "tl": "tgl_Latn", "tr": "tur_Latn",
    "ug": "uig_Arab", "uk": "ukr_Cyrl", "ur": "urd_Arab", "ur_rom": None, "uz": "uzn_Latn", "vi": "vie_Latn",
    "xh": "xho_Latn", "yi": "ydd_Hebr", "zh": "zho_Hans", "zh-Hant": "zho_Hant",
}
ENCODER_LANGUAGES: tuple[str, ...] = tuple(sorted({code for code in XLMR_CC100.values() if code is not None}))
NOT_ENCODER_LANGUAGES: tuple[str, ...] = tuple(code for code in SIB200_LANGUAGES if code not in ENCODER_LANGUAGES)

# ISO 15924 script names of the suffixes in SIB-200
SCRIPTS: dict[str, str] = {
    "Arab": "Arabic", "Armn": "Armenian", "Beng": "Bengali", "Cyrl": "Cyrillic", "Deva": "Devanagari",
    "Ethi": "Ethiopic", "Geor": "Georgian", "Grek": "Greek", "Gujr": "Gujarati", "Guru": "Gurmukhi",
    "Hang": "Hangul", "Hans": "Han (Simplified)", "Hant": "Han (Traditional)", "Hebr": "Hebrew", "Jpan": "Japanese",
    "Khmr": "Khmer", "Knda": "Kannada", "Laoo": "Lao", "Latn": "Latin", "Mlym": "Malayalam", "Mymr": "Myanmar",
    "Nkoo": "N'Ko", "Olck": "Ol Chiki", "Orya": "Odia", "Sinh": "Sinhala", "Taml": "Tamil", "Telu": "Telugu",
    "Tfng": "Tifinagh", "Thai": "Thai", "Tibt": "Tibetan",
}

# The task stage's languages besides English, the same for every system but LangBridge (English only, as
# published): six languages the encoder was pretrained on, one per large script family (Latin, Cyrillic, Arabic,
# Devanagari, Han) and one African language, so that the task stage sees the scripts the encoder knows best and the
# many languages no stage trains on measure transfer. All are in COMPARISON_LANGUAGES (their own group in reports).
TASK_LANGUAGES: tuple[str, ...] = ("arb_Arab", "fra_Latn", "hin_Deva", "rus_Cyrl", "swh_Latn", "zho_Hans")

# The study's fixed comparison set, chosen before any unit ran: English, the six task languages, then 22 languages
# the encoder was pretrained on and 18 it was not, spread over 23 scripts, from languages with large web corpora
# (German, Japanese, Korean) to ones with very little (Sinhala, Khmer, Tigrinya, Ol Chiki). The unseen group keeps
# scripts the encoder never saw in pretraining (Tibetan, Tifinagh, Ol Chiki) beside Latin-script African and
# American languages, dialects of seen languages (Moroccan Arabic, Cantonese) and languages whose script it knows
# (Sorani, Tatar, Meitei in Bengali script). 47 languages x 99 dev rows.
COMPARISON_LANGUAGES: tuple[str, ...] = (
    "eng_Latn",
    *TASK_LANGUAGES,
    # pretrained on (XLMR_CC100), not task-trained
    "amh_Ethi", "ben_Beng", "deu_Latn", "ell_Grek", "hau_Latn", "heb_Hebr", "hye_Armn", "jpn_Jpan", "kat_Geor",
    "khm_Khmr", "kor_Hang", "mya_Mymr", "sin_Sinh", "som_Latn", "spa_Latn", "tam_Taml", "tel_Telu", "tha_Thai",
    "tur_Latn", "urd_Arab", "vie_Latn", "zho_Hant",
    # not in the encoder's pretraining set
    "ary_Arab", "bod_Tibt", "ckb_Arab", "ibo_Latn", "kin_Latn", "lin_Latn", "mni_Beng", "mri_Latn", "quy_Latn",
    "sat_Olck", "tat_Cyrl", "tir_Ethi", "twi_Latn", "tzm_Tfng", "wol_Latn", "yor_Latn", "yue_Hant", "zul_Latn",
)

# named sets a recipe or a command may give instead of a list of codes
LANGUAGE_SETS: dict[str, tuple[str, ...]] = {
    "all": SIB200_LANGUAGES,
    "encoder": ENCODER_LANGUAGES,
    "not_encoder": NOT_ENCODER_LANGUAGES,
    "comparison": COMPARISON_LANGUAGES,
    "task": TASK_LANGUAGES,
}
HOW_TO_LIST = "`python -m layalign.data.flores` lists the codes"


def script(code: str) -> str:
    """The ISO 15924 script of a Flores-200 code ("tha_Thai" -> "Thai")."""
    return check_language(code).split("_", 1)[1]


def by_script(codes: Iterable[str] = SIB200_LANGUAGES) -> dict[str, list[str]]:
    """{script: codes}, scripts by how many of `codes` they hold (most first), codes in their given order."""
    groups: dict[str, list[str]] = {}
    for code in codes:
        groups.setdefault(script(code), []).append(code)
    return dict(sorted(groups.items(), key=lambda item: -len(item[1])))


def check_language(code: str, known: Iterable[str] = SIB200_LANGUAGES) -> str:
    """`code` if it is one of `known`; otherwise a ValueError saying where the valid codes are listed."""
    known = tuple(known)
    if code in known:
        return code
    close = [k for k in known if k.split("_")[0] == str(code).split("_")[0].lower()]
    hint = f" (did you mean {' or '.join(close)}?)" if close else ""
    raise ValueError(f"unknown Flores-200 language {code!r}{hint}; codes are ISO 639-3 + script like eng_Latn, "
                     f"swh_Latn, zho_Hans; {HOW_TO_LIST}")


def resolve_languages(langs: str | Iterable[str]) -> list[str]:
    """Flores-200 codes, each checked, from codes and names of LANGUAGE_SETS ("comparison", "task", ...) in any mix:
    "task" or ["eng_Latn", "task"]. Each code once, in the order given."""
    out: list[str] = []
    for item in [langs] if isinstance(langs, str) else langs:
        if item in LANGUAGE_SETS:
            out += LANGUAGE_SETS[item]
            continue
        try:
            out.append(check_language(item))
        except ValueError as e:
            raise ValueError(f"{e}; or name a set: {', '.join(LANGUAGE_SETS)}") from None
    return list(dict.fromkeys(out))


def _table() -> str:
    rows = [f"{code}\t{SCRIPTS[script(code)]}\t{'encoder' if code in ENCODER_LANGUAGES else '-'}"
            f"{chr(9) + 'comparison' if code in COMPARISON_LANGUAGES else ''}" for code in SIB200_LANGUAGES]
    sets = ", ".join(f"{name} ({len(codes)})" for name, codes in LANGUAGE_SETS.items())
    return "\n".join(["code\tscript\tin the encoder's pretraining (XLM-R CC-100)\tin the comparison set", *rows,
                      f"named sets: {sets}"])


if __name__ == "__main__":
    print(_table())
