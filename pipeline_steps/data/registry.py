"""What the pipeline reads: raw sources (what a download leaves on disk) and prepared datasets.

A *raw source* is one directory under ``data/raw/``; a *prepared dataset* is one directory under
``data/prepared/`` built from one or more raw sources (SugarCrepe needs COCO's val2017 images,
SNLI-VE needs Flickr30k, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

RAW_SOURCES = ("coco", "flickr30k", "winoground", "aro", "sugarcrepe", "vqa", "snli_ve", "vcr",
               "zeroshot")

# prepared dataset -> raw sources it is built from
PREPARED_FROM: dict[str, tuple[str, ...]] = {
    "coco": ("coco",),
    # Flickr30k's captions (results_20130124.token), less the images ARO and SNLI-VE evaluate on (hence
    # snli_ve): part of the synthetic CLIP's pretraining corpus
    "flickr30k": ("flickr30k", "snli_ve"),
    "winoground": ("winoground",),
    "aro_vg_relation": ("aro",),
    "aro_vg_attribution": ("aro",),
    "aro_coco_order": ("coco",),
    "aro_flickr_order": ("flickr30k",),
    "sugarcrepe": ("sugarcrepe", "coco"),
    "vqa": ("vqa", "coco"),
    "snli_ve": ("snli_ve", "flickr30k"),
    "vcr": ("vcr",),
    "zeroshot_shapes": ("zeroshot",),
    "zeroshot_colors": ("zeroshot",),
    "zeroshot_cifar10": ("zeroshot",),
    "zeroshot_cifar100": ("zeroshot",),
}

PREPARED_DATASETS = tuple(PREPARED_FROM)
# Zero-shot sets: the synthetic world has shapes and colours, paper mode CIFAR-10/100; the data stage
# prepares those that evaluate.zeroshot.datasets lists.
ZEROSHOT_DATASETS = tuple(d for d in PREPARED_DATASETS if d.startswith("zeroshot_"))


# Prepared only as a pretraining corpus of the synthetic world's CLIP (pretrain.clip_corpus): paper mode
# fetches a pretrained CLIP and reads Flickr30k's images through SNLI-VE and ARO alone.
CORPUS_DATASETS = ("flickr30k",)


def datasets_to_prepare(zeroshot: list[str], corpora: list[str] = ()) -> list[str]:
    """Every benchmark and task dataset, of the zero-shot sets those in ``zeroshot``, and of the
    pretraining corpora those in ``corpora``."""
    return [d for d in PREPARED_DATASETS
            if (d not in ZEROSHOT_DATASETS or d in zeroshot) and (d not in CORPUS_DATASETS or d in corpora)]

# The tasks that low-shot and domain-shift splits are built for, with the record field that
# stratifies low-shot sampling, the split holding training records and the one used for evaluation.
TASKS: dict[str, dict[str, str]] = {
    "vqa": {"label": "multiple_choice_answer", "train": "train", "eval": "val"},
    "snli_ve": {"label": "label", "train": "train", "eval": "test"},
    "vcr": {"label": "answer_label", "train": "train", "eval": "val"},
}


# --- where the real data comes from (paper mode) ----------------------------------------------------
#
# Each raw source is a list of files as their publishers serve them.  ``acquire.py`` downloads (or
# finds) each file, verifies it and assembles ``data/raw/<source>/`` in the layout the format module
# reads.  Sizes and hashes are the published ones (TFDS, LAVIS, the CIFAR page) or our own at a
# pinned commit; where none exists, the first download records its sha256 in the lock file
# (``data.lock``) and later downloads must match it.


OPEN, TOKEN, MANUAL, GDRIVE = "open", "token", "manual", "gdrive"

# Hub repositories and git files are read at a fixed revision.  Winoground's layout changed over
# time; no commit was at hand when this was written, so "main" is read and the lock file pins the
# bytes of the first download: set the commit here once you have access.
WINOGROUND_REVISION = "main"
HUB_URL = "https://huggingface.co/"  # files under it are read from HF_ENDPOINT when that is set
SUGARCREPE_COMMIT = "0047054b243992f0fad63d6f64f7544862daf846"
COCO_ZIPS = "http://images.cocodataset.org/zips"
BLIP = "https://storage.googleapis.com/sfr-vision-language-research/datasets"
VQA_S3 = "https://cvmlp.s3.amazonaws.com/vqa/mscoco/vqa"


@dataclass(frozen=True)
class RemoteFile:
    name: str                       # file name in data/downloads/<source>/
    url: str                        # where the publisher serves it
    access: str = OPEN              # open | token (HF_TOKEN) | manual (licence form) | gdrive
    size: int | None = None
    sha256: str | None = None
    md5: str | None = None
    extract: bool = False           # an archive whose members go into the raw source
    include: tuple[str, ...] = ()   # with extract: glob patterns of the members to keep
    place: str = ""                 # a plain file's path in the raw source (default: name)
    gdrive_id: str = ""

    @property
    def mirror_path(self) -> str:
        """The file's path on a mirror (``data.mirror``): host + path of its URL; Drive files by id."""
        if self.gdrive_id:
            return f"drive.google.com/{self.gdrive_id}/{self.name}"
        parts = urlsplit(self.url)
        return f"{parts.netloc}{parts.path}"


@dataclass(frozen=True)
class RemoteSource:
    reader: str                     # the format module that reads the assembled raw source
    files: tuple[RemoteFile, ...]
    how_to_get: str = ""            # for gated and manual sources: what the user must do
    convert: str = ""               # a conversion after extraction (see acquire.CONVERSIONS)


def _gdrive(name: str, file_id: str, **kw) -> RemoteFile:
    return RemoteFile(name, f"https://drive.google.com/uc?id={file_id}&export=download", GDRIVE,
                      gdrive_id=file_id, **kw)


_SUGARCREPE = {  # name: (bytes, sha256 at SUGARCREPE_COMMIT)
    "add_att": (158863, "012d88d729693d193760e6f3393b06a1cf874380a9db0062e937201199fe044d"),
    "add_obj": (484593, "1b9d76b93139a937b8dc1ada92a4f05ecc821bb3c291d752428bafadd4bb0682"),
    "replace_att": (176843, "9fe55fd4c0a9ad1f85d486d9f6d0215b41f867eb025026e7f7b5ce44352545ee"),
    "replace_obj": (361126, "9d299600639947e9d15281a9ded1382b376cf4ea088a8d08a1314bfe76e81898"),
    "replace_rel": (312629, "356bcc2fc4c6aed3f4d9fd50acc58489bb1fe70c28791f9368d4cbf9ea39cdc9"),
    "swap_att": (154665, "7a7ce04e5c4c80412b48c6f0c1347fb1a2f5d54c0be6aa429b64d390e442f8d0"),
    "swap_obj": (57569, "073cdb8e253d053614e80710834d9773b09dbc1dd0a412f6f9492262caa1dcad"),
}

REMOTE: dict[str, RemoteSource] = {
    "coco": RemoteSource("pipeline_steps.data.coco", (
        RemoteFile("annotations_trainval2017.zip",
                   "http://images.cocodataset.org/annotations/annotations_trainval2017.zip", size=252907541,
                   sha256="113a836d90195ee1f884e704da6304dfaaecff1f023f49b6ca93c4aaae470268", extract=True,
                   include=("annotations/captions_*2017.json",)),
        RemoteFile("train2017.zip", f"{COCO_ZIPS}/train2017.zip", size=19336861798,
                   sha256="69a8bb58ea5f8f99d24875f21416de2e9ded3178e903f1f7603e283b9e06d929", extract=True),
        RemoteFile("val2017.zip", f"{COCO_ZIPS}/val2017.zip", size=815585330,
                   sha256="4f7e2ccb2866ec5041993c9cf2a952bbed69647b115d0f74da7ce8f4bef82f05", extract=True),
        RemoteFile("train2014.zip", f"{COCO_ZIPS}/train2014.zip", size=13510573713,
                   sha256="ede4087e640bddba550e090eae701092534b554b42b05ac33f0300b984b31775", extract=True),
        RemoteFile("val2014.zip", f"{COCO_ZIPS}/val2014.zip", size=6645013297,
                   sha256="fe9be816052049c34717e077d9e34aa60814a55679f804cd043e3cbee3b9fde0", extract=True),
        RemoteFile("coco_karpathy_test.json", f"{BLIP}/coco_karpathy_test.json",
                   md5="3ff34b0ef2db02d01c37399f6a2a6cd1"),
    )),
    "flickr30k": RemoteSource("pipeline_steps.data.coco", (
        RemoteFile("flickr30k-images.tar.gz", "https://forms.illinois.edu/sec/229675", MANUAL, extract=True,
                   include=("flickr30k-images/*",)),
        RemoteFile("flickr30k_test.json", f"{BLIP}/flickr30k_test.json"),
    ), how_to_get="Flickr30k images are released after a request form: fill in "
                  "https://forms.illinois.edu/sec/229675, download flickr30k-images.tar.gz from the link you "
                  "receive"),
    "winoground": RemoteSource("pipeline_steps.data.winoground", (
        RemoteFile("examples.jsonl", f"{HUB_URL}datasets/facebook/winoground/resolve/"
                   f"{WINOGROUND_REVISION}/data/examples.jsonl", TOKEN),
        RemoteFile("images.zip", f"{HUB_URL}datasets/facebook/winoground/resolve/"
                   f"{WINOGROUND_REVISION}/data/images.zip", TOKEN, extract=True, include=("images/*",)),
    ), how_to_get="Winoground is gated on the Hugging Face Hub: log in at "
                  "https://huggingface.co/datasets/facebook/winoground and accept its terms, create a read "
                  "token at https://huggingface.co/settings/tokens, and export it as HF_TOKEN"),
    "aro": RemoteSource("pipeline_steps.data.aro", (
        _gdrive("visual_genome_relation.json", "1kX2iCHEv0CADL8dSO1nMdW-V0NqIAiP3"),
        _gdrive("visual_genome_attribution.json", "13tWvOrNOLHxl3Rm9cR3geAdHx2qR3-Tw"),
        _gdrive("vgr_vga_images.zip", "1qaPlrwhGNMrR3a11iopZUT_GPP_LrgP9", extract=True, include=("images/*",)),
    ), how_to_get="ARO's files are on Google Drive (ids in pipeline_steps/data/registry.py); when Drive "
                  "refuses (rate limits), download them in a browser"),
    "sugarcrepe": RemoteSource("pipeline_steps.data.sugarcrepe", tuple(
        RemoteFile(f"{name}.json", f"https://raw.githubusercontent.com/RAIVNLab/sugar-crepe/{SUGARCREPE_COMMIT}/"
                   f"data/{name}.json", size=size, sha256=sha, place=f"data/{name}.json")
        for name, (size, sha) in _SUGARCREPE.items())),
    "vqa": RemoteSource("pipeline_steps.data.vqa", tuple(
        RemoteFile(f"v2_{kind}_{split}_mscoco.zip", f"{VQA_S3}/v2_{kind}_{split}_mscoco.zip", extract=True,
                   include=("*.json",))
        for kind in ("Questions", "Annotations") for split in ("Train", "Val"))),
    "snli_ve": RemoteSource("pipeline_steps.data.snli_ve", (
        _gdrive("snli_ve_train.jsonl", "1jQElLXUA5ps3OuiSMlJdKTRIMwZ_cJ2e"),
        _gdrive("snli_ve_dev.jsonl", "1M6uSoJ4rXXsygReioHSJg2Xgip2NLpJW"),
        _gdrive("snli_ve_test.jsonl", "1_n4g8sbw_P6KBayvJ9B8KklZDFr0uPsQ"),
    ), how_to_get="SNLI-VE's prebuilt files are on Google Drive (ids in pipeline_steps/data/registry.py); "
                  "when Drive refuses (rate limits), download them in a browser"),
    "vcr": RemoteSource("pipeline_steps.data.vcr", (
        RemoteFile("vcr1annots.zip", "https://s3.us-west-2.amazonaws.com/ai2-rowanz/vcr1annots.zip", MANUAL,
                   extract=True, include=("*.jsonl",)),
        RemoteFile("vcr1images.zip", "https://s3.us-west-2.amazonaws.com/ai2-rowanz/vcr1images.zip", MANUAL,
                   extract=True, include=("vcr1images/*",)),
    ), how_to_get="VCR is released under a licence agreement: accept it at "
                  "https://visualcommonsense.com/download/ and download vcr1annots.zip and vcr1images.zip"),
    "zeroshot": RemoteSource("pipeline_steps.data.cifar", (
        RemoteFile("cifar-10-binary.tar.gz", "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
                   size=170052171, md5="c32a1d4ab5d03f1284b67883e8d87530", extract=True),
        RemoteFile("cifar-100-binary.tar.gz", "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
                   md5="03b5dce01913d631647c71ecec9e9cb8", extract=True),
    ), convert="cifar"),
}
