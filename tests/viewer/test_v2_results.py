"""A result sent by HL7 v2 is read with the person exactly as FHIR results are: it joins their trend chart."""

from __future__ import annotations

import datetime as dt

from healthplatform.ingest.inbox import inbox_store
from healthplatform.ingest.intake import arrival_of, intake_read
from healthplatform.ingest.processing import inbox_process
from tests.ingest.v2samples import msh
from tests.viewer.scenario import BIRTH, WANG_ID


def test_a_v2_result_joins_the_fhir_results_in_the_trend_chart(doctor, region):
    taken = (dt.datetime.now(dt.timezone(dt.timedelta(hours=8))) - dt.timedelta(days=1)).strftime("%Y%m%d%H%M%S")
    text = (
        msh("ORU^R01^ORU_R01", "R-77", app="HIS-HOSP-B", facility="HOSP-B")
        + f"PID|1||B-1^^^HOSP-B^MR~{WANG_ID}^^^CHN^NNCHN||王^小明||{BIRTH:%Y%m%d}|M\r"
        + f"OBR|1|P-77^HIS-B|F-77^LIS-B|24323-8^综合代谢^LN|||{taken}+0800\r"
        + f"OBX|1|NM|2345-7^葡萄糖^LN||9.4|mmol/L|3.9-6.1|H|||F|||{taken}+0800\r"
    )
    intake = intake_read(text.encode(), default_charset="UTF-8")
    assert not intake.rejected, intake.faults
    inbox_store([arrival_of(intake, door="mllp", peer="test", source_id=region.b.feed.source.pk)])
    assert inbox_process() == 1

    page = doctor.get(f"/viewer/patient/{region.wang}/").content.decode()
    labs = page[page.index('id="labs"') : page.find("</section>", page.index('id="labs"'))]
    chart = labs[labs.index("<svg") : labs.index("</svg>")]
    assert chart.count("<circle") == 5  # the four FHIR results and this one
    assert chart.count('class="pt high"') == 4 and "9.4" in labs
