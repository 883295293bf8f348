"""Where every data file comes from and where it lives locally (`ftcot data fetch` is ftcot.fetch).

The data folder mirrors the layout of the project's shared copy:
  raw/<dataset>/<file>                     original benchmark files, byte-identical to upstream
  splits/<task>__<name>.json               the paper's train/test splits
  few_shot_cot_prompts.json                the paper's few-shot-CoT prompts
  kojima_logs/<name>_zero_shot_cot.log     Kojima et al.'s zero-shot-CoT logs (text-davinci-002)
  teacher/text-davinci-002__zs_cot/*.jsonl recorded teacher outputs, parsed from those logs
  mentor_kd/data/...                       gpt-3.5-turbo-instruct rationales released with Mentor-KD, at its paths
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from ftcot.errors import UserError

# Upstream repositories at the commits the paper's data came from (docs/data.md).
# Full commit SHAs: raw.githubusercontent.com does not resolve short ones.
KOJIMA = "https://raw.githubusercontent.com/kojima-takeshi188/zero_shot_cot/5ef330fcdeec0cd26aee27943504f91f8ec1c33c"
REASONING_TEACHER = (
    "https://raw.githubusercontent.com/itsnamgyu/reasoning-teacher/a2ca4d28d3bbabbd77106b76d06885d1a5eac0d9"
)
GSM8K = "https://raw.githubusercontent.com/openai/grade-school-math/3101c7d5072418e28b9008a6636bde82a006892c"
AQUA = "https://raw.githubusercontent.com/google-deepmind/AQuA/26b64ed1f22208c6742f47df547dfd65088ec30d"
# Mentor-KD's code and data (Apache-2.0): gpt-3.5-turbo-instruct rationales on the paper's train splits.
MENTOR_KD = "https://raw.githubusercontent.com/2hojae/mentor-kd/ec9ea1118ef1ef71152b61c0768220011ac58e52"

TEACHER_DIR = "teacher/text-davinci-002__zs_cot"
# Kojima et al.'s log file name for each task; our teacher JSONL files are parsed from these logs.
KOJIMA_LOG_NAMES = {
    "single_eq": "singleeq",
    "addsub": "addsub",
    "multiarith": "multiarith",
    "gsm8k": "gsm8k",
    "aqua": "aqua",
    "svamp": "svamp",
    "date_understanding": "date_understanding",
    "tracking_shuffled_objects": "shuffled_objects",
    "last_letter_concatenation": "last_letters",
    "coin_flip": "coin_flip",
    "commonsense_qa": "commonsensqa",
    "strategy_qa": "strategyqa",
}


@dataclass(frozen=True)
class DataFile:
    path: str  # relative to the data folder
    sha256: str | None  # None: not known here (the file was never available to us), only its git blob id
    url: str | None  # public upstream URL; None for derived files that only a mirror serves
    origin: str = ""  # what a derived file was made from
    derived_from: str | None = None  # the data file it is parsed from, when the source does not have it
    git_blob: str | None = None  # its git blob id upstream (`git hash-object`), checked beside a sha256 or alone

    def __post_init__(self):
        if not (self.sha256 or self.git_blob):  # nothing may land in the data folder unverified
            raise ValueError(f"data file {self.path} has neither a sha256 nor a git blob id")


def _raw(path: str, sha256: str, url: str | None = None) -> DataFile:
    return DataFile(f"raw/{path}", sha256, url or f"{KOJIMA}/dataset/{path}")


def _split(name: str, sha256: str) -> DataFile:
    return DataFile(f"splits/{name}.json", sha256, f"{REASONING_TEACHER}/data/split/{name}.json")


def _log(task: str, sha256: str) -> DataFile:
    name = f"{KOJIMA_LOG_NAMES[task]}_zero_shot_cot.log"
    return DataFile(f"kojima_logs/{name}", sha256, f"{KOJIMA}/log/{name}")


def _mentor_kd(path: str, sha256: str, git_blob: str) -> DataFile:
    return DataFile(f"mentor_kd/{path}", sha256, f"{MENTOR_KD}/{path}", git_blob=git_blob)


def _teacher(task: str, sha256: str) -> DataFile:
    name = f"{KOJIMA_LOG_NAMES[task]}_zero_shot_cot.log"
    return DataFile(
        f"{TEACHER_DIR}/{task}.jsonl",
        sha256,
        None,
        origin=f"parsed from {KOJIMA}/log/{name}",
        derived_from=f"kojima_logs/{name}",
    )


DATA_FILES: tuple[DataFile, ...] = (
    DataFile(
        "few_shot_cot_prompts.json",
        "72bb973daf1ab1217ec5bc1cc95a8be8ab78d05ff42356a3176341d848956d19",
        f"{REASONING_TEACHER}/data/few_shot_cot_prompts.json",
    ),
    _raw("AQuA/test.json", "de41581881ef95c5588c44ddc701c77fd480839241dd422a0d181262af24520c"),
    # AQuA train (97,467 records) was never part of our copy: its git blob id upstream is what is known.
    DataFile("raw/AQuA/train.json", None, f"{AQUA}/train.json", git_blob="a805bddefde8d70fdb66ff7ab85a1999bdc3eece"),
    _raw("AddSub/AddSub.json", "21930fa90385c72b5a15f4b9a4dda27276b889ae9ff44285505cdd9fa0a20df8"),
    _raw("Bigbench_Date/task.json", "ff716f0e399109146db3a998281c39954907b78268a9b633a95582d63847822f"),
    _raw("Bigbench_object_tracking/task.json", "74b74d3c8827c0387a3f24ee9efa7edd90b2d53af3daacb9961341af66f750a0"),
    _raw("CommonsenseQA/dev_rand_split.jsonl", "3210497fdaae614ac085d9eb873dd7f4d49b6f965a93adadc803e1229fd8a02a"),
    _raw("CommonsenseQA/train_rand_split.jsonl", "58ffa3c8472410e24b8c43f423d89c8a003d8284698a6ed7874355dedd09a2fb"),
    _raw("MultiArith/MultiArith.json", "dc9db1b6cc68b1ecc2dec830d15aaf8c9a0932aa31d5ffce88ef3628179d36f4"),
    _raw("SVAMP/SVAMP.json", "5be77703a6d891ae476d7c082787ad361392aa02453b132516cdd5f4e7934e3e"),
    _raw("SingleEq/questions.json", "051507bd2b489c257057b485774a83d2710c23a4bc0f4a58e1822ae2773ef05e"),
    _raw("StrategyQA/task.json", "60af9081fed20102fd8bb1e02dc7d9f12238efcba33e4c1a56b4d61cb6409803"),
    _raw("coin_flip/coin_flip.json", "68cf201737a1463ef6bed5419622805a8934d92bff6a28a9dfbf83be3135ba5a"),
    _raw("grade-school-math/test.jsonl", "3730d312f6e3440559ace48831e51066acaca737f6eabec99bccb9e4b3c39d14"),
    _raw(
        "grade-school-math/train.jsonl",
        "17f347dc51477c50d4efb83959dbb7c56297aba886e5544ee2aaed3024813465",
        f"{GSM8K}/grade_school_math/data/train.jsonl",
    ),
    _raw("last_letters/last_letters.json", "60e8d092d0a6423d3256e87e0c249b69aefea4cd27985082095fa4e93931fb02"),
    _split("addsub__default", "1a6f70a39554084978a44439db0b661b039ce4dd2c09572d2ff9f44f5ef668d0"),
    _split("aqua__default", "8f6a271a99d34bc1fdf062672088eb17f7f782d86c60d9a709f06b6b8144ff6d"),
    _split("coin_flip__default", "a5f7ffe4a1a1e0181cbd9d00259d34f980c0073efe8a3ed25f69433cfb74a3a4"),
    _split("commonsense_qa__default", "4cec2867bc6bc201eaa5fc96844870d85356f32b4fa652c75b8b5e42b9fedc76"),
    _split("date_understanding__default", "5fbfdd1f0db941dce6accd7f43316eda2a2254f3a80f9a3a045f5a19bfb04578"),
    _split("date_understanding__template", "9b4508734ffc2ae908615e3f9f6ca3c9e27f44e4b5e714d220bd7152ddd39d89"),
    _split("gsm8k__default", "cf0f484fcaa270ff33f4ce00bff3f7e1f7f30b3e3bc76d0abcb74c22a6e9a6e0"),
    _split("last_letter_concatenation__default", "a5f7ffe4a1a1e0181cbd9d00259d34f980c0073efe8a3ed25f69433cfb74a3a4"),
    _split("multiarith__default", "f2f47aeb18026cb3d1909b38b8828693aeaf624af3282d8021dbee32008a1409"),
    _split("multiarith__template", "188abcfb1358424791e2d9c8d622ad10356283405fab11e1a58fa374cd9a48f4"),
    _split("single_eq__default", "d46feb082615045ea0909c5ed062ef85f29ba95223cbca39e0bfbb1ad1b5e1b7"),
    _split("strategy_qa__default", "0857d069a693a83c20466971b7e522b3c90c3258146c9b9461df98e4d2468de1"),
    _split("svamp__default", "fae6cc3a5c50952da78b66991182be507c8585e6a59954e03bd997488608ab1f"),
    _split("tracking_shuffled_objects__default", "6f2a4637d6e0692297e5eaa66bf53518445e1fbae1d94f28daae0040b7a1156a"),
    _log("addsub", "5a35a7d04ad18f17a5918ba9f456ef85598ffb4ab340d40abd510b316ec65ce4"),
    _log("aqua", "743315681523f6c459bb9dee0d106e1bbf813059bb0ecc3a75a9bbf8917766ad"),
    _log("coin_flip", "6c5cd500498686106fad37b8ce85bed2bd26a790b6b1aaa8bec382a0d1103048"),
    _log("commonsense_qa", "f8027dc6f4c85045ad7567dc71a9b5a4d69fb75af7cdf08ef809fcea617a2757"),
    _log("date_understanding", "14090fec37b29d4b7053f6ccc8d3865b8ffd949d9d2f21ae71c55f145cb087c8"),
    _log("gsm8k", "cfb2d43b29762ca5fb09856899a6f6595c7deda6ff73c5e8a3becb8d791c54c4"),
    _log("last_letter_concatenation", "31e13b33aed4f1c8a920b10914fb31bc0965089afc714d0e72cf78a2f17387b5"),
    _log("multiarith", "e2e3416d5f376b84513847b0ed2ac40fcfbe424b8279a18f0b6c980ff75fa351"),
    _log("single_eq", "51bbcb0c0fcc8f5696cd4cd74d89e46d7e5d9ff8fb2e639c1664254a2ecde251"),
    _log("strategy_qa", "9268254c7c2d86a96b0346d64f5b782440b17ded142589d160ebb39e53fde5c9"),
    _log("svamp", "37043ef358b75e108860746c533d0c9be0f307ec3373959524778f1b8af5a75a"),
    _log("tracking_shuffled_objects", "1bb4b95719d37b0cde221fa6d7fe40ab0aeb894d87973f48c6e1675b25301aa5"),
    _teacher("addsub", "e5c2c9bd85c10220987cef216fa6d0bf89cb7884033c02c922de8e8501bc5ccc"),
    _teacher("aqua", "199572e5c55d09bd9199e2a9a32da88b08ef5b501e35dd112e231ba8e86eca76"),
    _teacher("coin_flip", "97e0f68d36cd06a5a60773c9dfb5ded071fd160053966ff195e40f986d367c92"),
    _teacher("commonsense_qa", "0dc86993f160a4d0342380d72296d30f9f6a90798ffc00fa6163820107321970"),
    _teacher("date_understanding", "efb22b9fcf09681a281a66160d0dd717769950792a6d5c46a33af0be88ff9526"),
    _teacher("gsm8k", "bc3325cba5ce3f021c978c036e630e93899fa265b8712d98d6b2c5790b0f8223"),
    _teacher("last_letter_concatenation", "19cf087a055cd527894e9272b3dbb2b93ce92e621c3abce026edc16d4ff3b5e0"),
    _teacher("multiarith", "f4c0e7bb8e72a6ee48b40da3c412150a03d17390cd2b10135ad6fce332d14c84"),
    _teacher("single_eq", "4bf35839b518d42ff822f24ce60b1514d51eb84d47e25b8ae1e917ffaa5436e1"),
    _teacher("strategy_qa", "218e8f37bfd3d9dc47eda67848aea5adfa644424f721d8f3598839018a51e49e"),
    _teacher("svamp", "baadaf7610a7fb2b97c7ecb2b21776578203dafa0282d7251eafd4ad9d31b843"),
    _teacher("tracking_shuffled_objects", "956f0b8e6a15c0bae5a57575fb796f41230e33f5a08f708b1b35aab1bc2802e7"),
    _mentor_kd(
        "LICENSE",
        "c71d239df91726fc519c6eb72d318ec65820627232b2f796219e87dcf35d0ab4",
        "261eeb9e9f8b2b4b0d119366dda99c6fd7d35c64",
    ),
    _mentor_kd(
        "data/prompt/date_understanding_6.json",
        "b79e3ab40268effff99e6c59f08757290c7176f8fc684a5d1a3e42a4e280b43d",
        "e1775c3782aec320070419fb84da6b8b33accf45",
    ),
    _mentor_kd(
        "data/prompt/last_letter_concatenation_6.json",
        "eaa301af3cf00a9e28a2e42f69242abc374b44ec48ddf78e6f743b7c37581059",
        "d56f62af196b6de1dabfb231ab2df841294260b5",
    ),
    _mentor_kd(
        "data/prompt/tracking_shuffled_objects_6.json",
        "df3f4d353b87bb269f8313276169c08818f576c8a728dd644b363ce47c449621",
        "8da26d59e5973b76ebb9877c9ce2f23d25aefeb8",
    ),
    _mentor_kd(
        "data/main/strategy_qa_3_train.json",
        "2e07267e6dd9c52c4b36908e7470f2e9b77fdb3e6177b9fbf0b37a7b1a46a5cf",
        "efdeac5a5549d894368e30f00b7c396a37f8bfce",
    ),
)
DATA_FILES_BY_PATH = {f.path: f for f in DATA_FILES}


def data_dir(override: str | os.PathLike | None = None) -> Path:
    """The data folder: an explicit flag, else $FTCOT_DATA_DIR, else ~/.cache/ftcot/data."""
    if override:
        return Path(override).expanduser()
    if env := os.environ.get("FTCOT_DATA_DIR"):
        return Path(env).expanduser()
    return Path.home() / ".cache" / "ftcot" / "data"


def data_path(relpath: str, root: Path) -> Path:
    """The local path of a data file, or a one-line error naming it and where to get it."""
    path = root / relpath
    if path.is_file():
        return path
    known = DATA_FILES_BY_PATH.get(relpath)
    if known is not None and known.url:
        where = f"run `ftcot data fetch` or download {known.url}"
    elif known is not None:
        where = f"run `ftcot data fetch --source MIRROR` ({known.origin})"
    else:
        where = "no known source"
    raise UserError(f"missing data file {path}: {where}")


def digests(path: Path) -> tuple[str, str]:
    """A file's sha256 and its git blob id (the sha1 of b"blob <size>\\0" + its content), in one read."""
    with open(path, "rb") as f:
        sha256, blob = hashlib.sha256(), hashlib.sha1(b"blob %d\0" % os.fstat(f.fileno()).st_size)
        for block in iter(lambda: f.read(1 << 20), b""):
            sha256.update(block)
            blob.update(block)
    return sha256.hexdigest(), blob.hexdigest()


def sha256_of(path: Path) -> str:
    return digests(path)[0]


def mismatch(file: DataFile, path: Path) -> str | None:
    """How the content at path fails the file's published digests, or None when it matches every one it has."""
    sha256, blob = digests(path)
    if file.sha256 and sha256 != file.sha256:
        return f"expected sha256 {file.sha256}, got {sha256}"
    if file.git_blob and blob != file.git_blob:
        return f"expected git blob {file.git_blob}, got {blob}"
    return None


def is_verified(file: DataFile, root: Path) -> bool:
    path = root / file.path
    return path.is_file() and mismatch(file, path) is None
