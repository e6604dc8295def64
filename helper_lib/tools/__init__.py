"""The course's tools for instructors and graders (``python -m helper_lib ...``).

* :mod:`~helper_lib.tools.cli`: the command line (``train``, ``evaluate``, ``book``, ``grade``,
  ``doctor``, ...).
* :mod:`~helper_lib.tools.book` (and its nbconvert templates),
  :mod:`~helper_lib.tools.prose_numbers`: the offline site, slides and handouts; every number in
  the prose backed by an output.
* :mod:`~helper_lib.tools.export`, :mod:`~helper_lib.tools.site_explorer`: the latent explorer
  live on the site (``export``: the shipped decoders and classifier as ONNX; the panel that runs
  them in the browser).
* :mod:`~helper_lib.tools.exercises`, :mod:`~helper_lib.tools.checks`: the exercises' answers
  and ``check("NN.k", answer)``.
* :mod:`~helper_lib.tools.grading`, :mod:`~helper_lib.tools.grading_run`,
  :mod:`~helper_lib.tools.sandbox`, :mod:`~helper_lib.tools.zygote`,
  :mod:`~helper_lib.tools.grades`: ``grade``, a class's notebooks run in a bubblewrap sandbox
  (as root, each run forked from a zygote that imported torch once), and the grades table it
  writes.
* :mod:`~helper_lib.tools.lms`, :mod:`~helper_lib.tools.feedback`,
  :mod:`~helper_lib.tools.similarity`, :mod:`~helper_lib.tools.shards`
  (:mod:`~helper_lib.tools.pages`): what ``grade`` writes besides ``grades.csv``: Canvas's,
  Moodle's and Gradescope's files, a page per student, the similarity report; a class graded in
  shards and merged.
* :mod:`~helper_lib.tools.gradescope`: ``autograder``, the zip of a Gradescope autograder that
  runs the grader on each submission on Gradescope's machines.
* :mod:`~helper_lib.tools.doctor`, :mod:`~helper_lib.tools.speed`: is this machine ready, and how
  long an epoch takes here.
* :mod:`~helper_lib.tools.accessibility`: the notebooks' static accessibility check.
"""
