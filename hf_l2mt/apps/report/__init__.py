"""The forgetting report's files and ``hf-l2mt report``: the in-domain/general plot (``plot``), the page rendered
from one jinja2 template (``page``, ``templates/``), the JSON, the plot and the page written together (``files``),
and the page rebuilt from a run's JSON (``command``, whose flags are ``settings``)."""
