"""The Dagster code location (`dagster dev`, the webserver and the daemon load this).

Its settings come from the environment (CRM_CONFIG, CRM_SOURCE, CRM_LANDING_DIR,
CRM_WAREHOUSE_PATH); everything it defines is built in ``orchestration.defs``.
"""

from orchestration.defs import build_definitions
from orchestration.lib.pipeline import PipelineResource

defs = build_definitions(PipelineResource.from_env())
