"""shardgate: the application layer (command line, demo, local servers) above router/, replication/ and sharding/."""

__version__ = "0.1.0"
__all__ = ["__version__"]
