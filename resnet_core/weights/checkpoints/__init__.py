"""Reading and writing every checkpoint: our format (``format``), the key conventions of foreign files as a
table (``conventions``: detect -> rename -> note, and the variants that cannot be built), the
architecture a file holds and the model built from it (``architecture``), and checkpoint files on disk
(``files``: the runs and uploads folders, the upload quota).

Its errors are :class:`WeightsError` (one sentence; from ``errors``, shared with weights and preprocessing)
and :class:`CheckpointMismatch` (the keys that do not fit).
"""

from .architecture import (
    CheckpointMismatch,
    InferredArchitecture,
    NotAResNet,
    UnbuildableVariant,
    infer_architecture,
    infer_checkpoint,
    load_state_dict_checked,
    model_from_checkpoint,
    require_rgb,
)
from .conventions import (
    KEY_CONVENTIONS,
    UNBUILDABLE,
    KeyConvention,
    Unbuildable,
    apply_conventions,
    conventions_tried,
)
from .files import (
    OUTSIDE_FOLDERS,
    checkpoint_file,
    checkpoint_id,
    checkpoint_title,
    load_checkpoint_file,
    resolve_checkpoint_path,
    save_uploaded_checkpoint,
    store_upload,
)
from .format import (
    CHECKPOINT_SUFFIXES,
    FORMAT,
    MAX_BLOCKS_PER_STAGE,
    MAX_CHECKPOINT_BYTES,
    MAX_CLASS_NAME_CHARS,
    MAX_CLASSES,
    MAX_ELEMENTS,
    MAX_GROUPS,
    MAX_IN_CHANNELS,
    MAX_KEY_CHARS,
    MAX_PARAMETERS,
    MAX_PATH_CHARS,
    MAX_PICKLE_BYTES,
    MAX_STAGES,
    MAX_TENSORS,
    MAX_WIDTH,
    PICKLED_MODEL,
    Checkpoint,
    atomic_write,
    extract_state_dict,
    load_resume_checkpoint,
    make_checkpoint,
    read_checkpoint,
    save_checkpoint,
)

__all__ = [
    "CHECKPOINT_SUFFIXES", "FORMAT", "KEY_CONVENTIONS", "MAX_BLOCKS_PER_STAGE", "MAX_CHECKPOINT_BYTES",
    "MAX_CLASSES", "MAX_CLASS_NAME_CHARS", "MAX_ELEMENTS", "MAX_GROUPS", "MAX_IN_CHANNELS", "MAX_KEY_CHARS",
    "MAX_PARAMETERS", "MAX_PATH_CHARS", "MAX_PICKLE_BYTES", "MAX_STAGES", "MAX_TENSORS", "MAX_WIDTH",
    "OUTSIDE_FOLDERS", "PICKLED_MODEL", "UNBUILDABLE", "Checkpoint", "CheckpointMismatch", "InferredArchitecture",
    "KeyConvention", "NotAResNet", "Unbuildable", "UnbuildableVariant", "apply_conventions",
    "atomic_write", "conventions_tried", "extract_state_dict", "infer_architecture", "infer_checkpoint", "load_checkpoint_file", "load_resume_checkpoint",
    "load_state_dict_checked", "make_checkpoint", "model_from_checkpoint", "read_checkpoint", "require_rgb",
    "checkpoint_file", "checkpoint_id", "checkpoint_title", "resolve_checkpoint_path", "save_checkpoint", "save_uploaded_checkpoint", "store_upload",
]
