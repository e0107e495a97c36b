"""Wire-protocol frontends, one package per protocol: ``router.frontend.mysql``, ``router.frontend.postgres``."""
