# Config schemas: one validator that runs on the device AND on the host (the host executes
# this same file), so "validated before sending" and "validated on the device" cannot differ.
# Plain Python: no MicroPython-only imports.
#
# A schema maps each key to a tuple:
#   ("int", default, min, max)   ("float", default, min, max)   ("bool", default)
#   ("str", default, min_len, max_len)   ("enum", default, (choices...))
# Unknown keys are refused: a typo in a field config must not be silently ignored.


class SchemaError(ValueError):
    pass


def _check(key, rule, value):
    kind = rule[0]
    if kind == "bool":
        if value is not True and value is not False:
            raise SchemaError("%s: expected true or false, got %r" % (key, value))
        return value
    if kind == "int" or kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                (kind == "int" and not isinstance(value, int)):
            raise SchemaError("%s: expected %s, got %r" % (key, "an integer" if kind == "int"
                                                          else "a number", value))
        if kind == "float":
            value = float(value)
        if value != value or not rule[2] <= value <= rule[3]:
            raise SchemaError("%s: %r is outside %r..%r" % (key, value, rule[2], rule[3]))
        return value
    if kind == "str":
        if not isinstance(value, str) or not rule[2] <= len(value) <= rule[3]:
            raise SchemaError("%s: expected text of %d..%d characters" % (key, rule[2], rule[3]))
        return value
    if kind == "enum":
        if value not in rule[2]:
            raise SchemaError("%s: %r is not one of %s" % (key, value, ", ".join(rule[2])))
        return value
    raise SchemaError("%s: schema kind %r unknown" % (key, kind))


def defaults(schema):
    return dict((k, r[1]) for k, r in schema.items())


def validate(schema, values, base=None):
    """`base` (or the defaults) updated with `values`; raises SchemaError naming the key."""
    if not isinstance(values, dict):
        raise SchemaError("config must be a map of name to value")
    out = dict(base) if base is not None else defaults(schema)
    for key, value in values.items():
        rule = schema.get(key)
        if rule is None:
            raise SchemaError("%s: unknown setting (known: %s)" % (key, ", ".join(sorted(schema))))
        out[key] = _check(key, rule, value)
    return out
