"""Column metadata → TypeCode, for both engines, from the fields the wire protocols carry."""
import pytest

from router.backend.mysql_columns import FLAG, mysql_column
from router.backend.pg_columns import pg_column
from router.backend.result import Column, ExecResult, ResultSet, TypeCode, column_index, rows_from_status


def my(type_id: int, *, flags: int = 0, collation: int = 45, length: int = 10, decimals: int = 0) -> Column:
    return mysql_column(name="c", type_id=type_id, flags=flags, collation_id=collation, length=length,
                        decimals=decimals, table="t")


def test_mysql_integers_and_unsigned() -> None:
    assert my(1).type is TypeCode.TINYINT
    assert my(2).type is TypeCode.SMALLINT
    assert my(9).type is TypeCode.MEDIUMINT
    assert my(3).type is TypeCode.INT
    col = my(8, flags=FLAG.UNSIGNED | FLAG.NOT_NULL, collation=63)
    assert col.type is TypeCode.BIGINT and col.unsigned and col.nullable is False
    assert col.charset is None  # numbers have no character set, whatever the collation byte says
    assert col.backend_type == 8 and col.backend_type_name == "LONGLONG" and col.engine == "mysql"


def test_mysql_decimal_precision_from_length() -> None:
    # DECIMAL(20,10) signed: length 22 = 20 digits + point + sign
    col = my(246, length=22, decimals=10, collation=63)
    assert (col.type, col.precision, col.scale) == (TypeCode.DECIMAL, 20, 10)
    col = my(246, flags=FLAG.UNSIGNED, length=5, decimals=0, collation=63)  # DECIMAL(5,0) UNSIGNED
    assert (col.precision, col.scale) == (5, 0)


def test_mysql_strings_text_vs_binary() -> None:
    text = my(253, length=80)
    assert text.type is TypeCode.VARCHAR and text.charset == "utf8mb4" and text.collation == "utf8mb4_general_ci"
    assert my(253, collation=63).type is TypeCode.VARBINARY
    assert my(254, collation=63).type is TypeCode.BINARY
    assert my(254).type is TypeCode.CHAR
    assert my(252).type is TypeCode.TEXT
    blob = my(252, collation=63, flags=FLAG.BLOB | FLAG.BINARY)
    assert blob.type is TypeCode.BLOB and blob.charset == "binary"


def test_mysql_enum_set_and_unknown_collation() -> None:
    assert my(254, flags=FLAG.ENUM).type is TypeCode.ENUM
    assert my(254, flags=FLAG.SET).type is TypeCode.SET
    col = my(253, collation=4000)  # not in PyMySQL's table (newer MariaDB collations)
    assert col.type is TypeCode.VARCHAR and col.charset is None and col.collation is None


def test_mysql_temporal_and_others() -> None:
    assert my(12, decimals=6).scale == 6 and my(12).type is TypeCode.DATETIME
    assert my(7).type is TypeCode.TIMESTAMP
    assert my(10).type is TypeCode.DATE and my(14).type is TypeCode.DATE
    assert my(11).type is TypeCode.TIME
    assert my(13).type is TypeCode.YEAR
    assert my(16).type is TypeCode.BIT
    assert my(245).type is TypeCode.JSON
    assert my(6).type is TypeCode.NULL
    assert my(255).type is TypeCode.GEOMETRY
    assert my(200).type is TypeCode.OTHER and my(200).backend_type_name == "TYPE_200"


@pytest.mark.parametrize(("oid", "name", "code"), [
    (16, "bool", TypeCode.BOOL), (21, "int2", TypeCode.SMALLINT), (23, "int4", TypeCode.INT),
    (20, "int8", TypeCode.BIGINT), (1700, "numeric", TypeCode.DECIMAL), (700, "float4", TypeCode.FLOAT),
    (701, "float8", TypeCode.DOUBLE), (25, "text", TypeCode.TEXT), (1043, "varchar", TypeCode.VARCHAR),
    (1042, "bpchar", TypeCode.CHAR), (17, "bytea", TypeCode.BLOB), (1082, "date", TypeCode.DATE),
    (1083, "time", TypeCode.TIME), (1266, "timetz", TypeCode.TIMETZ), (1114, "timestamp", TypeCode.DATETIME),
    (1184, "timestamptz", TypeCode.TIMESTAMPTZ), (1186, "interval", TypeCode.INTERVAL),
    (114, "json", TypeCode.JSON), (3802, "jsonb", TypeCode.JSON), (2950, "uuid", TypeCode.UUID),
    (1560, "bit", TypeCode.BIT), (1562, "varbit", TypeCode.BIT),
])
def test_pg_builtin_types(oid: int, name: str, code: TypeCode) -> None:
    col = pg_column("c", oid, name, "scalar")
    assert col.type is code and col.backend_type == oid and col.backend_type_name == name
    assert col.engine == "postgres" and col.nullable is None
    if code.is_text or code is TypeCode.JSON:
        assert col.charset == "UTF8"


def test_pg_arrays_and_user_types() -> None:
    assert pg_column("a", 1007, "int4[]", "array").type is TypeCode.ARRAY
    enum = pg_column("m", 16385, "mood", "scalar")
    assert enum.type is TypeCode.OTHER and enum.backend_type_name == "mood"


def test_result_helpers() -> None:
    assert rows_from_status("INSERT 0 5") == 5
    assert rows_from_status("UPDATE 12") == 12
    assert rows_from_status("CREATE TABLE") == 0
    assert rows_from_status("") == 0
    cols = (pg_column("a", 23, "int4", "scalar"), pg_column("b", 25, "text", "scalar"))
    rs = ResultSet(columns=cols, rows=[(1, "x")])
    assert rs.column_names == ["a", "b"] and len(rs) == 1 and column_index(cols, "b") == 1
    with pytest.raises(ValueError):
        column_index(cols, "zz")
    assert ExecResult().rows_affected == 0 and TypeCode.BIGINT.is_integer and TypeCode.BLOB.is_binary
