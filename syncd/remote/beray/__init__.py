"""The ``beray`` kind: folders kept in step with a directory of a BeRay task's work folder."""
