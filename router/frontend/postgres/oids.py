"""PostgreSQL type OIDs (``src/include/catalog/pg_type.dat``) and their sizes and names."""
from __future__ import annotations

BOOL, BYTEA, CHAR, NAME, INT8, INT2, INT4, REGPROC, TEXT, OID, XID, CID = 16, 17, 18, 19, 20, 21, 23, 24, 25, 26, 28, 29
JSON, XML, POINT, FLOAT4, FLOAT8, UNKNOWN, MONEY = 114, 142, 600, 700, 701, 705, 790
INET, CIDR, MACADDR, MACADDR8, BPCHAR, VARCHAR = 869, 650, 829, 774, 1042, 1043
DATE, TIME, TIMESTAMP, TIMESTAMPTZ, INTERVAL, TIMETZ = 1082, 1083, 1114, 1184, 1186, 1266
BIT, VARBIT, NUMERIC, REGCLASS, REGTYPE, UUID = 1560, 1562, 1700, 2205, 2206, 2950
JSONB, VOID, RECORD = 3802, 2278, 2249
INT2VECTOR, OIDVECTOR, PG_NODE_TREE, XID8, PG_LSN = 22, 30, 194, 5069, 3220

# element type -> array type
ARRAY_OF: dict[int, int] = {
    BOOL: 1000, BYTEA: 1001, CHAR: 1002, NAME: 1003, INT2: 1005, INT4: 1007, TEXT: 1009, BPCHAR: 1014,
    VARCHAR: 1015, INT8: 1016, FLOAT4: 1021, FLOAT8: 1022, OID: 1028, TIMESTAMP: 1115, DATE: 1182, TIME: 1183,
    TIMESTAMPTZ: 1185, INTERVAL: 1187, NUMERIC: 1231, TIMETZ: 1270, UUID: 2951, JSON: 199, JSONB: 3807,
    INET: 1041, CIDR: 651, MACADDR: 1040, MONEY: 791, XML: 143, REGPROC: 1008, REGCLASS: 2210, REGTYPE: 2211,
    XID: 1011, CID: 1012,
}
ELEMENT_OF: dict[int, int] = {arr: elem for elem, arr in ARRAY_OF.items()}

_NAMES = {
    BOOL: "boolean", BYTEA: "bytea", CHAR: '"char"', NAME: "name", INT8: "bigint", INT2: "smallint", INT4: "integer",
    TEXT: "text", OID: "oid", JSON: "json", FLOAT4: "real", FLOAT8: "double precision", UNKNOWN: "unknown",
    BPCHAR: "character", VARCHAR: "character varying", DATE: "date", TIME: "time without time zone",
    TIMESTAMP: "timestamp without time zone", TIMESTAMPTZ: "timestamp with time zone", INTERVAL: "interval",
    TIMETZ: "time with time zone", NUMERIC: "numeric", UUID: "uuid", JSONB: "jsonb", INET: "inet", CIDR: "cidr",
    MACADDR: "macaddr", MONEY: "money", XML: "xml", BIT: "bit", VARBIT: "bit varying", VOID: "void",
    REGCLASS: "regclass", REGTYPE: "regtype", REGPROC: "regproc", RECORD: "record",
}

# pg_type.typlen of the fixed-size types; -1 (varlena) for the rest.
TYPLEN: dict[int, int] = {
    BOOL: 1, CHAR: 1, NAME: 64, INT8: 8, INT2: 2, INT4: 4, OID: 4, XID: 4, CID: 4, REGPROC: 4, REGCLASS: 4,
    REGTYPE: 4, FLOAT4: 4, FLOAT8: 8, DATE: 4, TIME: 8, TIMESTAMP: 8, TIMESTAMPTZ: 8, INTERVAL: 16, TIMETZ: 12,
    UUID: 16, MONEY: 8, MACADDR: 6, MACADDR8: 8, POINT: 16, VOID: 4,
}



def oid_name(oid: int) -> str:
    """The SQL name of a type, for error messages."""
    if oid in ELEMENT_OF:
        return oid_name(ELEMENT_OF[oid]) + "[]"
    return _NAMES.get(oid, f"type {oid}")
