"""Procedural solid models of the paper's seven ShapeNet categories.

`make_shape(category, rng, resolution)` draws a model's parameters from
`rng`, builds it from parts (`enhancer_gan.data.shape_parts`) and rasterises
it: a [R, R, R] bool grid in the project frame (x, y up, z), facing +x
(chair and sofa fronts, car bonnet, airplane nose, rifle muzzle, boat bow),
left-right along z, standing towards y = 0, centred, never empty or full.
World units are arbitrary (a chair seat is about 1 wide); the rasteriser
centres and scales every model.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from enhancer_gan.data.shape_parts import (
    Part,
    box,
    cylinder,
    ellipsoid,
    frame,
    plane,
    rasterize,
    rod,
    rot_y,
    rot_z,
    span_box,
)
from enhancer_gan.errors import ConfigError

# Every category `make_shape` can build, in the paper's order (docs/DESIGN.md#data).
CATEGORIES = ("airplane", "car", "chair", "table", "sofa", "rifle", "watercraft")


def _legs(parts, half_x, half_z, bottom, thickness, round_legs):
    """Four vertical legs under a rectangle, standing on y = 0."""
    for sx in (-1, 1):
        for sz in (-1, 1):
            cx, cz = sx * (half_x - thickness / 2), sz * (half_z - thickness / 2)
            if round_legs:
                parts.append(cylinder((cx, bottom / 2, cz), thickness / 2, bottom / 2))
            else:
                parts.append(box((cx, bottom / 2, cz), (thickness / 2, bottom / 2, thickness / 2)))


def _star_base(parts, rng, bottom, reach):
    """An office-chair / pedestal base: a column on a star of feet."""
    column = rng.uniform(0.04, 0.08)
    foot_h = rng.uniform(0.04, 0.08)
    parts.append(cylinder((0, (bottom + foot_h) / 2, 0), column, (bottom - foot_h) / 2))
    spokes = int(rng.integers(4, 6))
    start = rng.uniform(0, 360)
    width = rng.uniform(0.03, 0.05)
    for k in range(spokes):
        angle = start + 360.0 * k / spokes
        rot = rot_y(angle)
        parts.append(
            box(rot @ np.array([reach / 2, foot_h / 2, 0]), (reach / 2, foot_h / 2, width), rot)
        )


def _chair(rng: np.random.Generator) -> list[Part]:
    parts = []
    seat_w, seat_d = rng.uniform(0.8, 1.2), rng.uniform(0.75, 1.05)
    seat_t, seat_h = rng.uniform(0.06, 0.14), rng.uniform(0.75, 1.05)
    bottom = seat_h - seat_t
    parts.append(span_box((-seat_d / 2, bottom, -seat_w / 2), (seat_d / 2, seat_h, seat_w / 2)))

    base = rng.choice(["legs", "pedestal", "panels"], p=[0.7, 0.15, 0.15])
    if base == "legs":
        leg = rng.uniform(0.05, 0.12)
        inset = rng.uniform(0.0, 0.08)
        hx, hz = seat_d / 2 - inset, seat_w / 2 - inset
        _legs(parts, hx, hz, bottom, leg, rng.random() < 0.3)
        if rng.random() < 0.35:  # stretchers between front and back legs
            y = rng.uniform(0.15, 0.35) * bottom
            for sz in (-1, 1):
                cz = sz * (hz - leg / 2)
                parts.append(box((0, y, cz), (hx, leg * 0.3, leg * 0.3)))
    elif base == "pedestal":
        _star_base(parts, rng, bottom, rng.uniform(0.35, 0.5))
    else:
        panel = rng.uniform(0.06, 0.12)
        for sz in (-1, 1):
            z0 = sz * (seat_w / 2 - panel / 2)
            parts.append(box((0, bottom / 2, z0), (seat_d / 2, bottom / 2, panel / 2)))

    # The back leans backwards (its top towards -x) by up to 15 degrees.
    back_h, back_t = rng.uniform(0.6, 1.3), rng.uniform(0.06, 0.14)
    back_w = seat_w * rng.uniform(0.8, 1.0)
    rot = rot_z(rng.uniform(0.0, 15.0))
    up = rot[:, 1]
    foot = np.array([-seat_d / 2 + back_t / 2, seat_h, 0.0])
    if rng.random() < 0.65:
        parts.append(box(foot + up * back_h / 2, (back_t / 2, back_h / 2, back_w / 2), rot))
    else:  # a frame: two posts, a top rail and slats
        post = rng.uniform(0.05, 0.09)
        for sz in (-1, 1):
            c = foot + up * back_h / 2 + np.array([0, 0, sz * (back_w / 2 - post / 2)])
            parts.append(box(c, (back_t / 2, back_h / 2, post / 2), rot))
        rail = rng.uniform(0.08, 0.2) * back_h
        parts.append(box(foot + up * (back_h - rail / 2), (back_t / 2, rail / 2, back_w / 2), rot))
        slats = int(rng.integers(1, 4))
        for k in range(slats):
            cz = (k + 1) / (slats + 1) * back_w - back_w / 2
            c = foot + up * (back_h - rail) / 2 + np.array([0, 0, cz])
            parts.append(box(c, (back_t / 2 * 0.7, (back_h - rail) / 2, post / 2 * 0.8), rot))

    if rng.random() < 0.35:  # arms, kept well below the top of the back
        arm_h = rng.uniform(0.2, 0.45) * back_h
        arm_t = rng.uniform(0.05, 0.1)
        length = seat_d * rng.uniform(0.7, 1.0)
        for sz in (-1, 1):
            cz = sz * (seat_w / 2 - arm_t / 2)
            x0 = -seat_d / 2
            parts.append(
                span_box(
                    (x0, seat_h + arm_h - arm_t, cz - arm_t / 2),
                    (x0 + length, seat_h + arm_h, cz + arm_t / 2),
                )
            )
            xf = x0 + length - arm_t
            parts.append(
                span_box((xf, seat_h, cz - arm_t / 2), (xf + arm_t, seat_h + arm_h, cz + arm_t / 2))
            )
    return parts


def _table(rng: np.random.Generator) -> list[Part]:
    parts = []
    height, top_t = rng.uniform(0.65, 1.05), rng.uniform(0.04, 0.12)
    bottom = height - top_t
    if rng.random() < 0.25:  # round top
        radius = rng.uniform(0.45, 0.8)
        parts.append(cylinder((0, height - top_t / 2, 0), radius, top_t / 2))
        hx = hz = radius / math.sqrt(2)
    else:
        hx, hz = rng.uniform(0.4, 1.0), rng.uniform(0.4, 0.7)
        parts.append(span_box((-hx, bottom, -hz), (hx, height, hz)))

    support = rng.choice(["legs", "pedestal", "panels"], p=[0.6, 0.2, 0.2])
    if support == "legs":
        leg = rng.uniform(0.05, 0.12)
        inset = rng.uniform(0.0, 0.12) * min(hx, hz)
        lx, lz = hx - inset, hz - inset
        _legs(parts, lx, lz, bottom, leg, rng.random() < 0.3)
        if rng.random() < 0.4:  # apron under the top's edges
            apron = rng.uniform(0.05, 0.12)
            t = leg * 0.4
            y0 = bottom - apron
            for s in (-1, 1):
                parts.append(span_box((-lx, y0, s * lz - t), (lx, bottom, s * lz + t)))
                parts.append(span_box((s * lx - t, y0, -lz), (s * lx + t, bottom, lz)))
        if rng.random() < 0.25:  # a lower shelf between the legs
            y = rng.uniform(0.15, 0.3) * height
            shelf_t = rng.uniform(0.03, 0.05)
            parts.append(span_box((-lx + leg, y, -lz + leg), (lx - leg, y + shelf_t, lz - leg)))
    elif support == "pedestal":
        column = rng.uniform(0.06, 0.15)
        foot = rng.uniform(0.03, 0.07)
        parts.append(cylinder((0, bottom / 2, 0), column, bottom / 2))
        if rng.random() < 0.5:
            parts.append(cylinder((0, foot / 2, 0), rng.uniform(0.6, 0.9) * min(hx, hz), foot / 2))
        else:
            _star_base(parts, rng, bottom, rng.uniform(0.6, 0.9) * min(hx, hz))
    else:  # two slab ends, maybe joined by a stretcher
        slab = rng.uniform(0.04, 0.1)
        inset = rng.uniform(0.0, 0.15) * hx
        for s in (-1, 1):
            cx = s * (hx - inset - slab / 2)
            parts.append(box((cx, bottom / 2, 0), (slab / 2, bottom / 2, hz * 0.9)))
        if rng.random() < 0.5:
            parts.append(box((0, bottom * 0.3, 0), (hx - inset, slab / 2, slab / 2)))
    return parts


def _sofa(rng: np.random.Generator) -> list[Part]:
    parts = []
    width, depth = rng.uniform(1.5, 2.6), rng.uniform(0.8, 1.1)
    seat_h = rng.uniform(0.35, 0.5)
    leg_h = rng.uniform(0.05, 0.12) if rng.random() < 0.5 else 0.0
    hw, hd = width / 2, depth / 2
    parts.append(span_box((-hd, leg_h, -hw), (hd, seat_h, hw)))
    if leg_h:
        _legs(parts, hd * 0.95, hw * 0.95, leg_h, 0.06, rng.random() < 0.5)
    back_t, back_h = rng.uniform(0.15, 0.3), rng.uniform(0.35, 0.65)
    parts.append(span_box((-hd, leg_h, -hw), (-hd + back_t, seat_h + back_h, hw)))
    if rng.random() < 0.4:  # a rolled top on the back
        parts.append(cylinder((-hd + back_t / 2, seat_h + back_h, 0), back_t / 2, hw, "z"))
    if rng.random() < 0.5:  # seat cushions
        cushion = rng.uniform(0.03, 0.08)
        n = int(rng.integers(2, 4))
        gap = 0.02
        inner = width - 0.1
        each = inner / n
        for k in range(n):
            z0 = -inner / 2 + k * each + gap / 2
            parts.append(
                span_box((-hd + back_t, seat_h, z0), (hd, seat_h + cushion, z0 + each - gap))
            )
    if rng.random() < 0.85:  # arms
        # Arms stay below the back, whose top is the sofa's highest part.
        arm_t, arm_h = rng.uniform(0.1, 0.25), rng.uniform(0.1, min(0.3, back_h - 0.2))
        rolled = rng.random() < 0.4
        for s in (-1, 1):
            z0 = s * (hw - arm_t / 2)
            parts.append(
                span_box((-hd, leg_h, z0 - arm_t / 2), (hd, seat_h + arm_h, z0 + arm_t / 2))
            )
            if rolled:
                parts.append(cylinder((0, seat_h + arm_h, z0), arm_t / 2, hd, "x"))
    reach = rng.uniform(0.5, 0.9)
    # A sectional's chaise on one side, where the sofa stays wider than deep.
    if rng.random() < 0.2 and depth + reach < width - 0.1:
        chaise_w = rng.uniform(0.6, 0.9)
        s = 1 if rng.random() < 0.5 else -1
        z0, z1 = sorted((s * hw, s * (hw - chaise_w)))
        parts.append(span_box((hd, leg_h, z0), (hd + reach, seat_h, z1)))
    return parts


def _half_wing(root, semi_span, chord, thickness, sweep, dihedral, side) -> Part:
    """One wing from its root (3,) outwards along +z (side=1) or -z (side=-1)."""
    s, d = math.radians(sweep), math.radians(dihedral)
    direction = np.array(
        [-math.sin(s) * math.cos(d), math.sin(d), side * math.cos(s) * math.cos(d)]
    )
    rot = frame(direction, 2, (1.0, 0.0, 0.0))
    center = np.asarray(root, float) + direction * semi_span / 2
    return box(center, (chord / 2, thickness / 2, semi_span / 2), rot)


def _airplane(rng: np.random.Generator) -> list[Part]:
    parts = []
    length, radius = rng.uniform(2.5, 4.0), rng.uniform(0.11, 0.22)
    body = length * rng.uniform(0.5, 0.65)  # the cylindrical middle
    nose = length * rng.uniform(0.1, 0.2)
    tail = length - body - nose
    x0 = -length / 2 + tail  # start of the cylinder
    parts.append(cylinder((x0 + body / 2, 0, 0), radius, body / 2, "x"))
    parts.append(
        ellipsoid((x0 + body, 0, 0), (nose, radius, radius), [plane((-1, 0, 0), (x0 + body, 0, 0))])
    )
    tail_lift = rng.uniform(0.0, 0.5) * radius
    parts.append(
        ellipsoid((x0, tail_lift, 0), (tail, radius, radius), [plane((1, 0, 0), (x0, 0, 0))])
    )

    span = rng.uniform(2.2, 4.0)
    chord = rng.uniform(0.3, 0.7)
    wing_t = rng.uniform(0.03, 0.07)
    sweep = rng.uniform(0.0, 40.0)
    dihedral = rng.uniform(0.0, 6.0)
    wing_x = x0 + body * rng.uniform(0.35, 0.65)
    wing_y = radius * rng.uniform(-0.6, 0.6)
    for side in (-1, 1):
        parts.append(
            _half_wing((wing_x, wing_y, 0), span / 2, chord, wing_t, sweep, dihedral, side)
        )

    fin_h = rng.uniform(1.5, 3.5) * radius
    fin_chord = chord * rng.uniform(0.6, 1.0)
    fin_sweep = rng.uniform(15.0, 45.0)
    fin_x = -length / 2 + fin_chord * 0.6
    fin_rot = rot_z(fin_sweep)
    fin_foot = np.array([fin_x, tail_lift + radius * 0.5, 0.0])
    parts.append(
        box(fin_foot + fin_rot[:, 1] * fin_h / 2, (fin_chord / 2, fin_h / 2, wing_t / 2), fin_rot)
    )
    t_tail = rng.random() < 0.2
    stab_y = fin_foot[1] + fin_h * 0.9 if t_tail else tail_lift + radius * rng.uniform(0.0, 0.5)
    stab_x = fin_x - (fin_h * 0.9 * math.tan(math.radians(fin_sweep)) if t_tail else 0.0)
    stab_span = span * rng.uniform(0.25, 0.4)
    for side in (-1, 1):
        parts.append(
            _half_wing(
                (stab_x, stab_y, 0), stab_span / 2, fin_chord * 0.8, wing_t, sweep, 0.0, side
            )
        )

    if rng.random() < 0.6:  # engines hanging under the wings
        pairs = 1 if rng.random() < 0.7 else 2
        engine_r, engine_l = rng.uniform(0.06, 0.12), rng.uniform(0.3, 0.6)
        for k in range(pairs):
            z = span / 2 * (0.3 + 0.3 * k) * rng.uniform(0.9, 1.1)
            x = wing_x - z * math.tan(math.radians(sweep)) + chord * 0.3
            y = wing_y - wing_t / 2 - engine_r * 0.9
            for side in (-1, 1):
                parts.append(cylinder((x, y, side * z), engine_r, engine_l / 2, "x"))
    return parts


def _car(rng: np.random.Generator) -> list[Part]:
    parts = []
    length, width = rng.uniform(3.6, 5.0), rng.uniform(1.6, 2.0)
    clearance, body_h = rng.uniform(0.12, 0.25), rng.uniform(0.55, 0.8)
    wheel_r, wheel_w = rng.uniform(0.28, 0.4), rng.uniform(0.18, 0.28)
    hl, hw = length / 2, width / 2
    top = clearance + body_h
    wheelbase = length * rng.uniform(0.55, 0.68)
    # Planes through the front and rear top edges, sloping down to the ends.
    bevel = rng.uniform(0.05, 0.2) * body_h
    run = length * rng.uniform(0.05, 0.12)
    planes = [
        plane((bevel, run, 0), (hl, top - bevel, 0)),
        plane((-bevel, run, 0), (-hl, top - bevel, 0)),
    ]
    # The body above the wheel arches, then below them between the arches,
    # so the wheels show from the side.
    arch_top = min(2 * wheel_r + 0.04, top - 0.12)
    arch = wheel_r * 1.1
    parts.append(span_box((-hl, arch_top, -hw), (hl, top, hw), planes))
    w = wheelbase / 2
    for x0, x1 in ((-hl, -w - arch), (-w + arch, w - arch), (w + arch, hl)):
        parts.append(span_box((x0, clearance, -hw), (x1, arch_top + 0.01, hw), planes))

    kind = rng.choice(["sedan", "hatchback", "suv", "pickup"], p=[0.4, 0.25, 0.2, 0.15])
    cabin_w = hw * rng.uniform(0.8, 0.95)
    if kind == "sedan":
        cabin_l, cabin_h = length * rng.uniform(0.42, 0.55), rng.uniform(0.42, 0.6)
        rear = -hl + length * rng.uniform(0.15, 0.25)
    elif kind == "hatchback":
        cabin_l, cabin_h = length * rng.uniform(0.5, 0.62), rng.uniform(0.45, 0.6)
        rear = -hl + length * 0.03
    elif kind == "suv":
        cabin_l, cabin_h = length * rng.uniform(0.62, 0.78), rng.uniform(0.55, 0.85)
        rear = -hl + length * 0.02
    else:
        cabin_l, cabin_h = length * rng.uniform(0.22, 0.3), rng.uniform(0.45, 0.65)
        rear = -hl + length * rng.uniform(0.4, 0.5)
    front = rear + cabin_l
    # Windscreen and rear window: planes through the cabin's top corners.
    screen = rng.uniform(0.15, 0.35) * cabin_l
    back_glass = (0.05 if kind in ("suv", "pickup") else rng.uniform(0.1, 0.35)) * cabin_l
    cabin_planes = [
        plane((cabin_h, screen, 0), (front - screen, top + cabin_h, 0)),
        plane((-cabin_h, back_glass, 0), (rear + back_glass, top + cabin_h, 0)),
    ]
    parts.append(
        span_box((rear, top - 0.01, -cabin_w), (front, top + cabin_h, cabin_w), cabin_planes)
    )
    if kind == "pickup":  # the bed's side walls and tailgate
        wall = rng.uniform(0.05, 0.1)
        wall_h = rng.uniform(0.15, 0.3)
        for z0 in (-hw, hw - wall):
            parts.append(span_box((-hl, top, z0), (rear, top + wall_h, z0 + wall)))
        parts.append(span_box((-hl, top, -hw), (-hl + wall, top + wall_h, hw)))

    out = rng.uniform(0.0, 0.05)
    for sx in (-1, 1):
        for sz in (-1, 1):
            parts.append(
                cylinder(
                    (sx * wheelbase / 2, wheel_r, sz * (hw - wheel_w / 2 + out)),
                    wheel_r,
                    wheel_w / 2,
                    "z",
                )
            )
    return parts


def _rifle(rng: np.random.Generator) -> list[Part]:
    parts = []
    rec_l, rec_h, rec_w = rng.uniform(0.25, 0.35), rng.uniform(0.07, 0.12), rng.uniform(0.04, 0.07)
    parts.append(box((0, 0, 0), (rec_l / 2, rec_h / 2, rec_w / 2)))
    barrel_l, barrel_r = rng.uniform(0.35, 0.6), rng.uniform(0.012, 0.025)
    barrel_y = rec_h * rng.uniform(0.05, 0.3)
    parts.append(cylinder((rec_l / 2 + barrel_l / 2, barrel_y, 0), barrel_r, barrel_l / 2, "x"))
    if rng.random() < 0.6:  # handguard around the barrel's rear
        guard_l = barrel_l * rng.uniform(0.3, 0.6)
        guard_r = barrel_r * rng.uniform(2.0, 3.0)
        guard_r = min(guard_r, rec_h / 2)
        parts.append(
            cylinder(
                (rec_l / 2 + guard_l / 2, barrel_y - guard_r * 0.3, 0), guard_r, guard_l / 2, "x"
            )
        )

    # The stock, angled down towards the butt.
    stock_l, butt_h = rng.uniform(0.22, 0.35), rng.uniform(0.1, 0.16)
    rot = rot_z(rng.uniform(0.0, 12.0))
    back = -rot[:, 0]
    start = np.array([-rec_l / 2, 0.0, 0.0])
    if rng.random() < 0.5:
        parts.append(
            box(start + back * stock_l / 2, (stock_l / 2, butt_h / 2, rec_w / 2 * 0.9), rot)
        )
    else:  # a thin neck, then the butt
        neck = stock_l * 0.5
        parts.append(box(start + back * neck / 2, (neck / 2, rec_h / 4, rec_w / 2 * 0.8), rot))
        parts.append(
            box(
                start + back * (neck + (stock_l - neck) / 2),
                ((stock_l - neck) / 2, butt_h / 2, rec_w / 2 * 0.9),
                rot,
            )
        )

    grip_rot = rot_z(rng.uniform(10.0, 25.0))
    grip_l = rng.uniform(0.08, 0.12)
    grip_top = np.array([-rec_l * 0.3, -rec_h / 2, 0.0])
    parts.append(
        box(grip_top - grip_rot[:, 1] * grip_l / 2, (0.02, grip_l / 2, rec_w / 2 * 0.8), grip_rot)
    )
    if rng.random() < 0.6:  # magazine
        mag_rot = rot_z(-rng.uniform(0.0, 15.0))
        mag_l = rng.uniform(0.08, 0.18)
        top = np.array([rec_l * 0.15, -rec_h / 2, 0.0])
        parts.append(
            box(
                top - mag_rot[:, 1] * mag_l / 2,
                (rng.uniform(0.02, 0.03), mag_l / 2, rec_w / 2 * 0.7),
                mag_rot,
            )
        )
    if rng.random() < 0.5:  # scope on two mounts
        scope_r = rng.uniform(0.02, 0.035)
        scope_l = rec_l * rng.uniform(0.6, 1.0)
        y = rec_h / 2 + scope_r + 0.015
        parts.append(cylinder((0, y, 0), scope_r, scope_l / 2, "x"))
        for s in (-1, 1):
            parts.append(box((s * scope_l / 4, rec_h / 2 + 0.01, 0), (0.01, 0.015, 0.01)))
    if rng.random() < 0.15:  # bipod
        x = rec_l / 2 + barrel_l * 0.6
        for s in (-1, 1):
            parts.append(rod((x, barrel_y, 0), (x + 0.03, barrel_y - 0.15, s * 0.06), 0.008))
    return parts


def _watercraft(rng: np.random.Generator) -> list[Part]:
    parts = []
    length = rng.uniform(2.5, 5.0)
    beam = length * rng.uniform(0.18, 0.35)
    depth = beam * rng.uniform(0.3, 0.6)
    hl, hb = length / 2, beam / 2
    stern = -hl * rng.uniform(0.55, 0.85)
    # The hull: the lower half of an ellipsoid, cut square at the stern.
    hull_planes = [plane((0, 1, 0), (0, 0, 0)), plane((-1, 0, 0), (stern, 0, 0))]
    parts.append(ellipsoid((0, 0, 0), (hl, depth, hb), hull_planes))
    kind = rng.choice(["ship", "sailboat", "speedboat"], p=[0.45, 0.3, 0.25])
    if kind == "ship":
        levels = int(rng.integers(1, 4))
        x = -hl * rng.uniform(0.0, 0.4)
        y = 0.0
        cl, cw = length * rng.uniform(0.15, 0.35), beam * rng.uniform(0.5, 0.8)
        for _ in range(levels):
            h = beam * rng.uniform(0.12, 0.25)
            parts.append(span_box((x - cl / 2, y - 0.01, -cw / 2), (x + cl / 2, y + h, cw / 2)))
            y += h
            cl, cw = cl * rng.uniform(0.6, 0.85), cw * rng.uniform(0.8, 0.95)
        if rng.random() < 0.6:  # funnel
            r = cw * rng.uniform(0.15, 0.3)
            h = beam * rng.uniform(0.2, 0.5)
            parts.append(cylinder((x - cl / 4, y + h / 2, 0), r, h / 2))
    elif kind == "sailboat":
        mast_x = hl * rng.uniform(-0.1, 0.3)
        mast_h = length * rng.uniform(0.5, 0.9)
        mast_r = beam * 0.03
        parts.append(cylinder((mast_x, mast_h / 2, 0), mast_r, mast_h / 2))
        boom = hl * rng.uniform(0.5, 0.9)
        sail_t = beam * 0.02
        foot_y = mast_h * 0.08
        # The mainsail: a box cut along the line from the masthead to the boom's end.
        cut = plane((foot_y - mast_h, boom, 0), (mast_x, mast_h, 0))
        parts.append(span_box((mast_x - boom, foot_y, -sail_t), (mast_x, mast_h, sail_t), [cut]))
        if rng.random() < 0.6:  # a small cabin
            parts.append(
                span_box(
                    (mast_x - boom * 0.7, -0.01, -hb * 0.5),
                    (mast_x - boom * 0.1, beam * 0.15, hb * 0.5),
                )
            )
    else:
        cab_x = hl * rng.uniform(-0.2, 0.2)
        cab_l = length * rng.uniform(0.15, 0.3)
        cab_h = beam * rng.uniform(0.15, 0.3)
        screen = plane((cab_h, cab_l * 0.5, 0), (cab_x + cab_l / 2 - cab_l * 0.5, cab_h, 0))
        parts.append(
            span_box(
                (cab_x - cab_l / 2, -0.01, -hb * 0.7),
                (cab_x + cab_l / 2, cab_h, hb * 0.7),
                [screen],
            )
        )
        if rng.random() < 0.5:  # outboard motor
            m = beam * rng.uniform(0.1, 0.2)
            parts.append(span_box((stern - m, -depth * 0.8, -m / 2), (stern, m, m / 2)))
    return parts


_BUILDERS: dict[str, Callable[[np.random.Generator], list[Part]]] = {
    "airplane": _airplane,
    "car": _car,
    "chair": _chair,
    "table": _table,
    "sofa": _sofa,
    "rifle": _rifle,
    "watercraft": _watercraft,
}


def make_shape(category: str, rng: np.random.Generator, resolution: int = 32) -> np.ndarray:
    """A random solid model of a category.

    The parameters are drawn from `rng` before the resolution is used, so two
    generators in the same state give the same shape at any resolution.

    Args:
      category: one of `CATEGORIES`.
      rng: the source of all randomness.
      resolution: grid side R (>= 8).

    Returns:
      [R, R, R] bool grid in the project frame (x, y up, z), facing +x,
      centred, never empty and never full.
    """
    if category not in _BUILDERS:
        raise ConfigError(
            f"unknown synthetic category {category!r}; known: {', '.join(CATEGORIES)}"
        )
    if not isinstance(resolution, (int, np.integer)) or resolution < 8:
        raise ConfigError(f"synthetic shapes need an integer resolution >= 8, got {resolution!r}")
    return rasterize(_BUILDERS[category](rng), int(resolution))
