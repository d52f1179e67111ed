"""Database connectors (S5): the fides dataset format, its reference graph, and the SQL traversal.

``portal.execution.collection`` calls the SQL collector for the postgres, mysql and sqlite connection
types; what a connector is given and may raise is in ``base``.
"""
