"""Connector kinds, one package each (registered in ``connectors.registry``)."""
