"""Self-Instruct generation: grow an instruction data set from seed tasks.

``from sftdata.generate import GenerateConfig, generate``;
``generate(GenerateConfig(num=20, output="out.jsonl"))`` writes canonical records
(source "self_instruct") and returns a ``GenerateSummary``. See ``pipeline.py`` for the
stages, ``backends.py`` / ``local_backend.py`` for the models, ``rouge.py`` for the
diversity filter and ``state.py`` for resuming.
"""

from sftdata.generate.api import GenerateSummary, agenerate, generate, make_backend
from sftdata.generate.config import GenerateConfig

__all__ = ["GenerateConfig", "GenerateSummary", "agenerate", "generate", "make_backend"]
