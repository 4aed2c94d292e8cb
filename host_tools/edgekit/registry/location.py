"""Device locations for the public register: coarsening for privacy, and a check that catches
latitude and longitude given the wrong way round.

A water meter sits on private premises: its exact point is a household's address, and its
telemetry can tell whether that home is occupied. The register publishes such devices on a
grid cell's centre, never the point itself. Devices in public space (kiosks, bins, street
sensors) keep their point.
"""
import math

EARTH_RADIUS_KM = 6371.0088
# level -> grid cell edge in metres (None: the point itself)
GRID_M = {"exact": None, "block": 100, "district": 1000}
# A device further than this from every other device of the fleet, whose swapped coordinates
# would put it among them, was almost certainly typed LON,LAT.
SWAP_KM = 100.0


def distance_km(a, b):
    """Great-circle (haversine) distance between two (lat, lon) points."""
    lat1, lon1, lat2, lon2 = map(math.radians, (a[0], a[1], b[0], b[1]))
    h = (math.sin((lat2 - lat1) / 2) ** 2
         + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2)
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def coarsen(lat, lon, level):
    """(lat, lon, precision_m) as published at `level`: the centre of the grid cell holding
    the point (cells are `GRID_M[level]` metres on a side), or the point for "exact"."""
    cell = GRID_M[level]
    if cell is None:
        return lat, lon, None
    dlat = cell / 111320.0                      # metres per degree of latitude
    row = math.floor(lat / dlat)
    clat = (row + 0.5) * dlat
    # Longitude cells are as wide in metres as they are tall, at the cell row's latitude.
    dlon = min(360.0, cell / (111320.0 * max(math.cos(math.radians(clat)), 1e-6)))
    col = math.floor(lon / dlon)
    clon = (col + 0.5) * dlon
    return round(clat, 6), round(clon, 6), cell


def swap_suspect(lat, lon, others):
    """A message when (lat, lon) is far from all of `others` (the fleet's other located
    devices) but (lon, lat) is near one of them; else None."""
    others = [o for o in others if o[0] is not None and o[1] is not None]
    if not others or not (-90 <= lon <= 90):
        return None
    near = min(distance_km((lat, lon), o) for o in others)
    swapped = min(distance_km((lon, lat), o) for o in others)
    if near > SWAP_KM and swapped <= SWAP_KM:
        return (f"{lat},{lon} is {near:.0f} km from every other device of this fleet, and "
                f"{lon},{lat} is {swapped:.0f} km from one: latitude comes first "
                f"(--location {lon},{lat}); give --force-location if the device really is "
                "there")
    return None
