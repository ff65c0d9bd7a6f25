"""Realistic HL7 v2 messages of every type the platform maps, as a Chinese HIS / LIS / RIS sends them (v2.5.1
field positions; GB/T local codes beside LOINC, ATC and CVX). Synthetic: the resident identity number has a
valid check digit and names no one."""

from __future__ import annotations

import base64
import datetime as dt

from mpi.identifiers import make_resident_id

RESIDENT = make_resident_id("440106", dt.date(1975, 5, 5), 2)
OTHER_RESIDENT = make_resident_id("440106", dt.date(1962, 9, 30), 7)


def msh(
    message_type: str,
    control: str,
    *,
    app: str = "HIS-A",
    facility: str = "HOSP-A",
    version: str = "2.5.1",
    accept: str = "",
    application: str = "",
    charset: str = "UNICODE UTF-8",
):
    """MSH with MSH-15 / MSH-16 (empty: original mode) and MSH-18."""
    return (
        f"MSH|^~\\&|{app}|{facility}|HIP|REGION|20261203101500+0800||{message_type}|{control}|P|{version}"
        f"|||{accept}|{application}|CHN|{charset}\r"
    )


def pid(mrn: str = "M-7", *, name: str = "赵^敏", birth: str = "19750505", sex: str = "F", resident: str = RESIDENT):
    return (
        f"PID|1||{mrn}^^^HOSP-A^MR~{resident}^^^CHN^NNCHN||{name}||{birth}|{sex}|||"
        "天河路1号^^广州市^广东省^510000^CHN||^PRN^PH^^^^^^^^^13800000000\r"
    )


def pv1(visit: str = "V-55", *, location: str = "W3^12^1", admitted: str = "20261203100000+0800", discharged=""):
    fields = ["PV1", "1", "I", location] + [""] * 15 + [visit] + [""] * 24 + [admitted, discharged]
    return "|".join(fields) + "\r"


def adt(trigger: str, control: str, *, mrn: str = "M-7", visit: str = "V-55", extra: str = "", **kw) -> str:
    return (
        msh(f"ADT^{trigger}^ADT_A01", control)
        + f"EVN|{trigger}|20261203101500+0800\r"
        + pid(mrn, **{k: v for k, v in kw.items() if k in ("name", "birth", "sex", "resident")})
        + pv1(visit, **{k: v for k, v in kw.items() if k in ("location", "admitted", "discharged")})
        + extra
    )


AL1 = (
    "AL1|1|DA|J01CA04^阿莫西林^ATC|SV|皮疹~呼吸困难|20200101\r"
    "AL1|2|FA|^海鲜过敏|MO|荨麻疹\r"  # free text only: kept as text, never dropped
)


def a40(control: str, *, survivor: str = "M-7", prior: str = "M-9") -> str:
    return (
        msh("ADT^A40^ADT_A39", control) + "EVN|A40|20261203101500+0800\r" + pid(survivor) + f"MRG|{prior}^^^HOSP-A^MR\r"
    )


def a60(control: str, *, action: str = "A") -> str:
    return (
        msh("ADT^A60^ADT_A60", control)
        + "EVN|A60|20261203101500+0800\r"
        + pid()
        + f"IAM|1|DA|N02BA01^阿司匹林^ATC|MO|哮喘|{action}|ALG-1^HOSP-A||||20190301||20261203101500+0800\r"
    )


def oru(control: str, *, value: str = "6.4", status: str = "F", app: str = "LIS-A") -> str:
    return (
        msh("ORU^R01^ORU_R01", control, app=app)
        + pid()
        + "ORC|RE|P-1^HIS-A|F-1^LIS-A\r"
        + "OBR|1|P-1^HIS-A|F-1^LIS-A|24323-8^综合代谢^LN|||20261203070000+0800|||||||||D-1^李^医生||||||"
        + f"20261203080000+0800|||{'C' if status == 'C' else 'F'}\r"
        + f"OBX|1|NM|2345-7^葡萄糖^LN||{value}|mmol/L|3.9-6.1|H|||{status}|||20261203075500+0800\r"
        + "OBX|2|NM|2160-0^肌酐^LN||80|umol/L|57-111|N|||F|||20261203075500+0800\r"
        + "NTE|1||空腹采血\r"
    )


def oru_imaging(control: str) -> str:
    return (
        msh("ORU^R01^ORU_R01", control, app="RIS-A")
        + pid()
        + "OBR|1|P-2^HIS-A|F-2^RIS-A|CT001^胸部CT平扫^99RIS|||20261203090000+0800|||||||||||||||||RAD|F\r"
        + "OBX|1|TX|CT001-F^影像所见^99RIS||两肺纹理清晰~未见明确结节||||||F\r"
        + "OBX|2|TX|CT001-I^影像诊断^99RIS||胸部CT平扫未见异常||||||F\r"
    )


def orm(control: str, *, control_code: str = "NW", placer: str = "P-100", test: str = "2345-7^葡萄糖^LN") -> str:
    return (
        msh("ORM^O01^ORM_O01", control)
        + pid()
        + pv1()
        + f"ORC|{control_code}|{placer}^HIS-A|||||^^^20261210080000+0800^^R||20261203101500+0800|||D-1^李^医生\r"
        + f"OBR|1|{placer}^HIS-A||{test}|||||||||||||||||||||||^^^20261210080000+0800^^R\r"
    )


def oml(control: str, *, placer: str = "P-101") -> str:
    return (
        msh("OML^O21^OML_O21", control)
        + pid()
        + pv1()
        + f"ORC|NW|{placer}^HIS-A|||||||20261203101500+0800|||D-1^李^医生\r"
        + "TQ1|1||||||20261204080000+0800\r"
        + f"OBR|1|{placer}^HIS-A||4548-4^糖化血红蛋白^LN\r"
        + "SPM|1|||BLD^全血^HL70487\r"
    )


def rde(control: str, *, control_code: str = "NW", placer: str = "RX-1", drug: str = "J01CA04^阿莫西林胶囊^ATC"):
    return (
        msh("RDE^O11^RDE_O11", control)
        + pid()
        + pv1()
        + f"ORC|{control_code}|{placer}^HIS-A|||||||20261203101500+0800|||D-1^李^医生\r"
        + "TQ1|1||TID|||||20261203120000+0800|20261210120000+0800\r"
        + f"RXE||{drug}|0.5||g|CAP^胶囊^HL70292|||||21|CAP\r"
        + "RXR|PO^口服^HL70162\r"
    )


def mdm(control: str, *, number: str = "DOC-77", pdf: bool = False) -> str:
    txa = (
        f"TXA|1|DS|{'AP' if pdf else 'TX'}|20261203120000+0800|D-1^李^医生|20261203110000+0800||||||"
        f"{number}^HIS-A||||出院小结|AU||AV\r"
    )
    if pdf:
        data = base64.b64encode(b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n").decode()
        content = f"OBX|1|ED|18842-5^出院小结^LN||HIS-A^application^pdf^Base64^{data}||||||F\r"
    else:
        content = "OBX|1|TX|18842-5^出院小结^LN||出院诊断：2型糖尿病~出院医嘱：规律服药||||||F\r"
    return msh("MDM^T02^MDM_T02", control) + "EVN|T02|20261203120000+0800\r" + pid() + pv1() + txa + content


def vxu(control: str, *, action: str = "A", filler: str = "IZ-1") -> str:
    return (
        msh("VXU^V04^VXU_V04", control, app="EPI-A")
        + pid()
        + f"ORC|RE||{filler}^HOSP-A\r"
        + "RXA|0|1|20261203093000+0800|20261203093000+0800|08^乙肝疫苗^CVX|0.5|mL^^UCUM||00^新接种记录^NIP001|"
        + f"N-1^王^护士|||||LOT123||SKB^葛兰素史克^MVX|||CP|{action}\r"
        + "RXR|IM^肌内注射^HL70162|LD^左三角肌^HL70163\r"
    )
