"""The default style of the crossings layer: QGIS (QML) and SLD, stored in a GeoPackage's ``layer_styles``.

Points are graduated by ``score`` (a calibrated probability where the bundle has calibrated scoring) in the
classes of :data:`SCORE_CLASSES`, pale and small below 0.5 to dark red and large from 0.95, and labelled with
their id and score (:data:`LABEL_EXPRESSION`). Both documents are generated from that one table.
"""

from __future__ import annotations

from xml.sax.saxutils import escape

# The label: the crossing's id (to find its row) and its score to 4 decimals (window scores of a bundle sit
# between its threshold, e.g. 0.9976, and 1: two decimals read "1.00" on every point).
LABEL_EXPRESSION = """'#' || "crossing_id" || ' ' || format_number("score", 4)"""

# (lower, upper, label); the last class includes its upper bound
SCORE_CLASSES = [(0.0, 0.5, 'below 0.5'), (0.5, 0.8, '0.5 - 0.8'), (0.8, 0.95, '0.8 - 0.95'), (0.95, 1.0, '0.95 - 1')]
# per class: fill colour (R, G, B) and marker size (mm in QGIS; the SLD's pixels are 3.6 x that)
_LOOK = [((190, 190, 190), 2.4), ((255, 200, 0), 3.0), ((255, 110, 0), 3.6), ((220, 0, 0), 4.2)]
_SOURCE = ((255, 40, 0), 3.6)      # the renderer's source symbol (new classes a user adds start from it)


def _qml_symbol(name: str, rgb: tuple[int, int, int], size_mm: float) -> str:
    options = [("name", "circle"), ("color", "{},{},{},255".format(*rgb)), ("outline_color", "255,255,255,255"),
               ("outline_style", "solid"), ("outline_width", "0.5"), ("outline_width_unit", "MM"),
               ("size", f"{size_mm:.1f}"), ("size_unit", "MM"), ("joinstyle", "bevel")]
    body = "\n".join(f'            <Option type="QString" name="{k}" value="{v}"/>' for k, v in options)
    return (f'      <symbol type="marker" name="{name}" alpha="1" clip_to_extent="1" force_rhr="0">\n'
            f'        <layer class="SimpleMarker" enabled="1" pass="0" locked="0">\n'
            f'          <Option type="Map">\n{body}\n          </Option>\n        </layer>\n      </symbol>')


def _qml() -> str:
    ranges = "\n".join(f'      <range lower="{lo}" upper="{hi}" symbol="{i}" label="{label}" render="true"/>'
                       for i, (lo, hi, label) in enumerate(SCORE_CLASSES))
    symbols = "\n".join(_qml_symbol(str(i), rgb, size) for i, (rgb, size) in enumerate(_LOOK))
    label = escape(LABEL_EXPRESSION, {'"': "&quot;", "'": "&apos;"})
    return f"""<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis version="3.28.0" styleCategories="Symbology|Labeling">
  <renderer-v2 type="graduatedSymbol" attr="score" graduatedMethod="GraduatedColor" symbollevels="0"
               enableorderby="0" forceraster="0">
    <ranges>
{ranges}
    </ranges>
    <symbols>
{symbols}
    </symbols>
    <source-symbol>
{_qml_symbol("0", *_SOURCE)}
    </source-symbol>
    <classificationMethod id="Fixed"/>
    <rotation/>
    <sizescale/>
  </renderer-v2>
  <labeling type="simple">
    <settings calloutType="simple">
      <text-style fieldName="{label}" isExpression="1" fontSize="8"
                  textColor="160,0,0,255" fontWeight="75">
        <text-buffer bufferDraw="1" bufferSize="0.8" bufferColor="255,255,255,255"/>
      </text-style>
      <placement placement="1" dist="1.5" xOffset="0" yOffset="0"/>
      <rendering scaleVisibility="1" scaleMin="1" scaleMax="25000"/>
    </settings>
  </labeling>
  <layerGeometryType>0</layerGeometryType>
</qgis>
"""


def _sld_rule(lo: float, hi: float, label: str, rgb: tuple[int, int, int], size_mm: float, last: bool) -> str:
    upper = "PropertyIsLessThanOrEqualTo" if last else "PropertyIsLessThan"
    prop = "<ogc:PropertyName>score</ogc:PropertyName>"
    return f"""  <se:Rule><se:Name>{label}</se:Name>
    <ogc:Filter><ogc:And>
      <ogc:PropertyIsGreaterThanOrEqualTo>{prop}<ogc:Literal>{lo}</ogc:Literal></ogc:PropertyIsGreaterThanOrEqualTo>
      <ogc:{upper}>{prop}<ogc:Literal>{hi}</ogc:Literal></ogc:{upper}>
    </ogc:And></ogc:Filter>
    <se:PointSymbolizer><se:Graphic><se:Mark><se:WellKnownName>circle</se:WellKnownName>
      <se:Fill><se:SvgParameter name="fill">#{"%02x%02x%02x" % rgb}</se:SvgParameter></se:Fill>
      <se:Stroke><se:SvgParameter name="stroke">#ffffff</se:SvgParameter></se:Stroke>
    </se:Mark><se:Size>{round(size_mm * 3.6):d}</se:Size></se:Graphic></se:PointSymbolizer>
  </se:Rule>"""


def _sld() -> str:
    rules = "\n".join(_sld_rule(lo, hi, label, rgb, size, i == len(SCORE_CLASSES) - 1)
                      for i, ((lo, hi, label), (rgb, size)) in enumerate(zip(SCORE_CLASSES, _LOOK)))
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<StyledLayerDescriptor version="1.1.0" xmlns="http://www.opengis.net/sld" xmlns:se="http://www.opengis.net/se"
    xmlns:ogc="http://www.opengis.net/ogc">
  <NamedLayer><se:Name>crossings</se:Name><UserStyle><se:Name>crossings</se:Name><se:FeatureTypeStyle>
{rules}
  </se:FeatureTypeStyle></UserStyle></NamedLayer>
</StyledLayerDescriptor>
"""


QML = _qml()
SLD = _sld()
