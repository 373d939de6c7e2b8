#!/usr/bin/env python3
"""Writes the protobuf seed inputs of the fuzz targets into corpus/.

The seeds are small, valid or nearly valid messages built from the records in
the tests (core/src/wire.rs, core/src/validate.rs, core/src/directive.rs); the
fuzzer mutates them from there. Standard library only: a minimal protobuf
encoder for the few field types kith.v1 uses (see proto/kith/v1/kith.proto
for the field numbers). Re-run after changing the seeds below:

    python3 fuzz/seeds.py
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def varint(n):
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(number, value):
    """One field: int -> varint, float -> double, str/bytes -> length-delimited,
    list -> repeated (packed for ints), dict -> embedded message."""
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    if isinstance(value, float):
        return varint(number << 3 | 1) + struct.pack("<d", value)
    if isinstance(value, list):
        if value and all(isinstance(v, int) for v in value):
            packed = b"".join(varint(v) for v in value)
            return varint(number << 3 | 2) + varint(len(packed)) + packed
        return b"".join(field(number, v) for v in value)
    if isinstance(value, dict):
        value = message(value)
    if isinstance(value, str):
        value = value.encode()
    return varint(number << 3 | 2) + varint(len(value)) + value


def message(fields):
    return b"".join(field(n, v) for n, v in sorted(fields.items()))


def demographics(given, family, dob, postcode):
    return {1: given, 2: family, 3: dob, 4: postcode}


RECORD = {
    1: "asc-1001",
    2: 1,
    3: "E08000003",
    4: {1: "9434765919", 3: demographics("Zoë", "O'Brien", "1950-03-01", "M1 1AE")},
    5: 6,  # adult social care
    6: "Adult Social Care",
    7: {1: "2024-03-01"},
    8: {1: "J. Smith", 2: "Social worker", 3: "0161 000 0000"},
    10: 1,  # normal
    12: {1: 5, 2: 5, 3: "Care Act 2014"},
    13: [1],
    14: 1,
}

CPP = {
    1: "cpp-1",
    2: 2,
    3: "E08000003",
    4: {1: "9434765919", 2: [{1: "mosaic", 2: "C-12345"}]},
    5: 1,  # child protection plan
    7: {1: "2025-01-01", 2: "2026-06-30"},
    8: {1: "A", 3: "0161 000 0000", 4: "a@example.org"},
    9: {1: "Emergency duty team", 3: "0161 999 9999"},
    10: 2,  # restricted
    11: ["safeguarding"],
    12: {1: 5, 3: "Children Act 1989 s47"},
    13: [2, 1],
    14: 1,
    15: {1: "mosaic", 2: "00" * 32},
    16: "2040-01-01",
}

DIRECTIVE = {
    1: "dir-1",
    2: 1,
    3: "E08000003",
    4: "cpp-1",
    5: 2,  # objection
    6: 1,  # active
    7: {1: "2026-01-01"},
    8: "the person",
    9: [1, 4],
    10: ["police"],
    11: ["P01"],
    12: "2026-01-01T09:30:00Z",
    13: "objects to sharing with the police",
}

CONSENT = {
    1: "dir-2",
    2: 3,
    4: "asc-1001",
    5: 1,
    6: 1,
    7: {1: "2025-06-01", 2: "2027-06-01"},
    8: "the person",
    12: "2025-06-01T12:00:00+01:00",
}

USER = {1: "jsmith", 2: "J. Smith", 3: "social_worker", 4: "Children's Services"}

QUERIES = [
    {1: USER, 2: 2, 3: {1: "9434765919"}},
    {1: USER, 2: 1, 3: {3: demographics("Zoe", "OBrien", "1950-03-01", "M1 1AE")}},
    {1: USER, 2: 3, 3: {1: "943 476 5919"}, 4: {1: "life_threatening", 2: "Unconscious patient in A&E, no other history"}},
    {1: USER, 2: 1, 3: {2: [{1: "mosaic", 2: "C-12345"}], 3: demographics("Zoe", "O'Brien", "1950-03-01", "")}, 5: "0123456789abcdef"},
]

RESPONSE = {
    1: "0123456789abcdef0123456789abcdef",
    2: [
        {1: 1, 2: CPP, 3: "permitted by agreement children-safeguarding", 4: ["policy0"], 5: "Council A"},
        {1: 2, 2: {1: "asc-1001", 3: "E08000003", 5: 6}, 3: "summary only", 5: "Council A"},
        {1: 3, 3: "withheld: sealed", 5: "Trust C"},
    ],
    3: 42,
    4: [{1: "RX1", 2: 1}],
    5: "",
    6: [{1: "cand-1", 2: 7.5, 3: "2026-01", 4: ["family_name", "date_of_birth"], 5: ["postcode"]}],
    7: "2026-01-01T13:00:00Z",
    8: "nhs_number",
}

NOTIFICATION = {
    1: "n-1",
    2: 1,
    3: "2026-01-01T09:30:00Z",
    4: {1: "cpp-1", 2: "E08000003"},
    5: 1,
    6: "P01",
    7: "Police Force",
    8: USER,
    9: 1,
    10: 1,
    11: "0123456789abcdef0123456789abcdef",
    12: "permitted by agreement children-safeguarding",
    13: 42,
}


def write(target, name, data):
    folder = os.path.join(HERE, "corpus", target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def main():
    write("wire_record", "asc-1001", message(RECORD))
    write("wire_record", "cpp-1", message(CPP))
    write("wire_record", "empty", b"")
    write("wire_directive", "objection", message(DIRECTIVE))
    write("wire_directive", "consent", message(CONSENT))
    for i, q in enumerate(QUERIES):
        write("query_check", f"request-{i}", b"\x00" + message(q))
    write("query_check", "response", b"\x01" + message(RESPONSE))
    write("query_check", "notification", b"\x03" + message(NOTIFICATION))


if __name__ == "__main__":
    main()
