"""Synthetic HL7 v2 messages as the region's systems send them (no real person: identity numbers are
obviously fake 18-character values, names are common ones). Each is a list of segments; ``wire`` joins them with
a chosen segment terminator and encodes them."""

ADT_A01_251 = [
    "MSH|^~\\&|HIS|SZ001^1.2.156.112604.1.1^ISO|HP|REGION|20240301083000+0800||ADT^A01^ADT_A01|ADT0001|P|2.5.1"
    "|||AL|NE||UNICODE UTF-8",
    "EVN|A01|20240301083000",
    "PID|1||MRN0001^^^SZ001^MR~11010519000101000X^^^NNCHN^NI~HC99000001^^^HC^HC||张^伟^^^^^L||19800115|M|||"
    "深圳市南山区科技园1号^^深圳^广东^518000^CHN||^PRN^PH^^^^13800000000",
    "PV1|1|I|NEU^301^2^SZ001||||D001^王^医生|||||||||||V0001|||||||||||||||||||||||||20240301080000",
    "AL1|1|DA|^青霉素|SV|皮疹",
    "DG1|1||I10^Essential (primary) hypertension^I10|||A",
    "ZPV|1|VIP\\S\\GOLD|extra",
]

ADT_A08_23 = [
    "MSH|^~\\&|HIS|GZ002|HP|REGION|20240302091500||ADT^A08|A08-7781|P|2.3",
    "EVN|A08|20240302091500",
    'PID|1||MRN0002^^^GZ002^MR||刘^美华||19751203|F|||""||""',
    "PV1|1|O|OUTPAT",
]

ADT_A40_24 = [
    "MSH|^~\\&|HIS|GZ002|HP|REGION|20240302100000||ADT^A40^ADT_A39|A40-0001|P|2.4",
    "EVN|A40|20240302100000",
    "PID|1||MRN0002^^^GZ002^MR||刘^美华||19751203|F",
    "MRG|MRN0099^^^GZ002^MR",
]

ORU_R01_251 = [
    "MSH|^~\\&|LIS|SZ001|HP|REGION|20240301120000+0800||ORU^R01^ORU_R01|LAB-20240301-0001|P|2.5.1|||NE|NE||"
    "UNICODE UTF-8",
    "PID|1||MRN0001^^^SZ001^MR||张^伟||19800115|M",
    "OBR|1|PL0001|FL0001|CBC^血常规^L|||20240301100000|||||||||D001^王^医生||||||20240301115900|||F",
    *[
        f"OBX|{n}|NM|T{n:03d}^检验项目{n}^L||{n}.5|mmol/L|3.5-5.5|{'H' if n % 5 == 0 else 'N'}|||F|||20240301113000"
        for n in range(1, 31)
    ],
    "NTE|1||标本轻度溶血\\.br\\结果仅供参考",
]

ORM_O01_231 = [
    "MSH|^~\\&|HIS|SZ001|PACS|SZ001|20240303140000||ORM^O01|ORM-5512|P|2.3.1",
    "PID|1||MRN0001^^^SZ001^MR||张^伟||19800115|M",
    "ORC|NW|PL7788^HIS||||||||||D001^王^医生",
    "OBR|1|PL7788^HIS||CT01^胸部CT平扫^L|||20240303140000",
]

RDE_O11_25 = [
    "MSH|^~\\&|HIS|SZ001|HP|REGION|20240303150000||RDE^O11^RDE_O11|RDE-0042|P|2.5|||||CHN|UTF-8",
    "PID|1||MRN0001^^^SZ001^MR||张^伟||19800115|M",
    "ORC|NW|RX0042^HIS|||||||20240303150000|||D001^王^医生",
    "RXE|^BID^^20240303|SMZ-TMP^复方磺胺甲噁唑片^L|1||片|||||14|片|0",
    "RXR|PO^口服^HL70162",
]

MDM_T02_251 = [
    "MSH|^~\\&|EMR|SZ001|HP|REGION|20240304090000||MDM^T02^MDM_T02|MDM-0007|P|2.5.1|||AL|AL||UNICODE UTF-8",
    "EVN|T02|20240304090000",
    "PID|1||MRN0001^^^SZ001^MR||张^伟||19800115|M",
    "PV1|1|I|NEU^301^2",
    "TXA|1|DS|TX|20240304085000|D001^王^医生||||||||DOC-0007||||||AU||AV",
    "OBX|1|TX|DS^出院小结^L||患者因头痛入院。\\.br\\治疗：降压\\T\\对症。\\.br\\血压 140\\S\\90 mmHg||||||F",
    "OBX|2|TX|DS^出院小结^L||出院医嘱：规律服药，\\F\\复诊\\F\\ 一周后。||||||F",
]

VXU_V04_251 = [
    "MSH|^~\\&|CDC|SZ-CDC|HP|REGION|20240305100000||VXU^V04^VXU_V04|VXU-0100|P|2.5.1|||ER|AL||UNICODE UTF-8",
    "PID|1||MRN0003^^^SZ-CDC^MR||陈^小明||20230101|M",
    "ORC|RE||IZ-0100",
    "RXA|0|1|20240305093000||HBV^乙肝疫苗^L|10|ug||00^新记录^NIP001||||||LOT123||MFR^某生物^L|||CP|A",
    "RXR|IM^肌内注射^HL70162|LD^左三角肌^HL70163",
]

ORU_R01_28 = [
    "MSH|^~\\&#|LIS|SZ001|HP|REGION|20240306080000+0800||ORU^R01^ORU_R01|LAB-28-0001|P|2.8|||NE|NE||UNICODE UTF-8",
    "PID|1||MRN0001^^^SZ001^MR||张^伟||19800115|M",
    "OBR|1|PL0009|FL0009|GLU^血糖^L",
    "OBX|1|NM|GLU^血糖^L||6.1|mmol/L|3.9-6.1|N|||F",
    "OBX|2|ST|CMT^备注^L||长文本被截断\\P\\#||||||F",
]

SAMPLES = {
    "ADT^A01 2.5.1": ADT_A01_251,
    "ADT^A08 2.3": ADT_A08_23,
    "ADT^A40 2.4": ADT_A40_24,
    "ORU^R01 2.5.1": ORU_R01_251,
    "ORM^O01 2.3.1": ORM_O01_231,
    "RDE^O11 2.5": RDE_O11_25,
    "MDM^T02 2.5.1": MDM_T02_251,
    "VXU^V04 2.5.1": VXU_V04_251,
    "ORU^R01 2.8": ORU_R01_28,
}


def wire(segments: list[str], *, terminator: str = "\r", codec: str = "utf-8") -> bytes:
    return (terminator.join(segments) + terminator).encode(codec)


def with_charset(segments: list[str], declared: str) -> list[str]:
    """The same message with MSH-18 set to ``declared`` (MSH-13 … MSH-17 emptied)."""
    fields = segments[0].split("|")
    fields = [*(fields + [""] * 18)[:17], declared]
    return ["|".join(fields).rstrip("|") if not declared else "|".join(fields), *segments[1:]]


def with_delimiters(segments: list[str], field: str, msh2: str) -> list[str]:
    """The same message written with other encoding characters (MSH-1, MSH-2), escapes included."""
    default = "|^~\\&"
    mapping = dict(zip(default, field + msh2[:4], strict=True))
    out = []
    for number, segment in enumerate(segments):
        translated = "".join(mapping.get(c, c) for c in segment)
        if number == 0:
            translated = "MSH" + field + msh2 + translated[3 + 1 + 4 :]
        out.append(translated)
    return out
