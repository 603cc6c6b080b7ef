"""Domain core of yuqing: models, ids, ports, settings and errors. No I/O here."""
