"""Pure rules of meter numbering."""

IIN = "600727"  # the STS issuer identification number used by the published test meters


def luhn_check_digit(digits: str) -> str:
    """The Luhn digit that makes `digits + check` valid (ISO/IEC 7812), as STS MeterPANs use."""
    if not digits.isdigit():
        raise ValueError("a meter number is digits only")
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = int(char)
        if position % 2 == 0:  # these positions are doubled once the check digit is appended
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return str((10 - total % 10) % 10)


def sts_meter_number(drn: int, *, iin: str = IIN) -> str:
    """IIN (6 digits) + an 11-digit decoder reference number + the check digit: 18 digits."""
    if not 0 <= drn < 10**11:
        raise ValueError("the decoder reference number has at most 11 digits")
    body = f"{iin}{drn:011d}"
    return body + luhn_check_digit(body)
