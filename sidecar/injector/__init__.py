"""The sidecar injector: a Kubernetes mutating admission webhook that adds the sidecar to opted-in pods.

- `template`: the sidecar spec the chart rendered from its named templates (one source of truth).
- `annotations`: opt-in and per-pod overrides.
- `ports`: the sidecar's TCP ports against the ports the pod's containers declare.
- `patch`: pure logic, pod JSON in, RFC 6902 JSON Patch operations and warnings out.
- `review`: AdmissionReview v1 parsing and responses (pure).
- `server`: the thin aiohttp HTTPS server around them, with metrics and TLS reload.
"""

from sidecar.injector.patch import Outcome, plan
from sidecar.injector.template import SidecarTemplate, TemplateError, load_template

__all__ = ["Outcome", "SidecarTemplate", "TemplateError", "load_template", "plan"]
