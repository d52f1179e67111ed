"""Database connectors (S5): the fides dataset format, its reference graph, and the SQL traversal.

Importing this package registers the SQL collector for the postgres, mysql and sqlite connection types
(``collection.collect`` imports it before its first run).
"""

from portal.execution.collection import register
from portal.execution.connectors.sql import SQL_CONNECTION_TYPES, collect_databases

for _connection_type in SQL_CONNECTION_TYPES:
    register(_connection_type, collect_databases)
