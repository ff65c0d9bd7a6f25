"""The registry admin in a real Chromium, as a Chinese-speaking platform administrator uses it."""

from __future__ import annotations

import datetime as dt

from registry.models import Institution
from tests.registry.factories import InstitutionFactory, credit_code

CHANGELIST = "/admin/registry/institution/"


def test_admin_logs_in_and_speaks_chinese_to_a_zh_cn_browser(admin_page, live_server):
    # The browser only says zh-CN (Accept-Language); Django must pick its zh-hans catalogue from that.
    assert admin_page.locator("html").get_attribute("lang") == "zh-hans"
    assert "区域健康信息平台" in admin_page.locator("#site-name").inner_text()
    admin_page.get_by_role("link", name="医疗机构").first.click()
    admin_page.wait_for_url(f"{live_server.url}{CHANGELIST}")
    assert admin_page.locator("#content h1").inner_text().startswith("选择")


def test_admin_adds_an_institution_through_the_form_after_fixing_a_wrong_code(admin_page, live_server):
    code = credit_code(901)
    wrong_code = code[:17] + ("0" if code[17] != "0" else "1")
    admin_page.goto(f"{live_server.url}{CHANGELIST}")
    admin_page.get_by_role("link", name="增加 医疗机构").click()

    admin_page.fill("#id_name", "海珠区第二人民医院")
    admin_page.fill("#id_code", wrong_code)
    admin_page.select_option("#id_kind", "hospital")
    admin_page.select_option("#id_level", "secondary")
    admin_page.fill("#id_division_code", "440105")
    admin_page.fill("#id_district", "江南中街道")
    admin_page.fill("#id_licence_number", f"{code[8:17]}44010511A1000")
    admin_page.fill("#id_licence_valid_from", "2024-01-01")
    admin_page.fill("#id_licence_valid_until", "2029-01-01")
    admin_page.click("input[name=_save]")

    # The model's validator answers beside the field, in Chinese, and the other fields are kept.
    assert "机构代码的校验码错误" in admin_page.locator(".field-code .errorlist").inner_text()
    assert admin_page.input_value("#id_name") == "海珠区第二人民医院"
    assert not Institution.objects.exists()

    admin_page.fill("#id_code", code)
    admin_page.click("input[name=_save]")
    admin_page.wait_for_url(f"{live_server.url}{CHANGELIST}")
    assert "成功添加了" in admin_page.locator(".messagelist .success").inner_text()
    saved = Institution.objects.get(code=code)
    assert (saved.name, saved.kind) == ("海珠区第二人民医院", "hospital")
    assert saved.licence_valid_until == dt.date(2029, 1, 1)
    assert admin_page.locator("#result_list tbody tr").count() == 1


def test_admin_searches_institutions_by_chinese_name(admin_page, live_server, tmp_path):
    InstitutionFactory(name="越秀区中医医院", district="北京街道")
    InstitutionFactory(name="天河区妇幼保健院", district="石牌街道")
    InstitutionFactory(name="荔湾区骨伤科医院", district="西关街道")
    admin_page.goto(f"{live_server.url}{CHANGELIST}")

    headers = admin_page.locator("#result_list thead th").all_inner_texts()
    assert {"名称", "机构代码", "等级", "类别", "许可证有效期至"} <= {h.strip() for h in headers}
    assert "过滤器" in admin_page.locator("#changelist-filter").inner_text()
    assert admin_page.locator("#result_list tbody tr").count() == 3

    admin_page.fill("#searchbar", "中医")
    admin_page.press("#searchbar", "Enter")
    admin_page.wait_for_url("**/?q=*")
    names = admin_page.locator("#result_list tbody th.field-name").all_inner_texts()
    assert names == ["越秀区中医医院"]
    assert "1 条结果" in admin_page.locator("#changelist-search").inner_text()

    shot = tmp_path / "institution-search.png"
    admin_page.screenshot(path=shot, full_page=True)
    assert shot.read_bytes().startswith(b"\x89PNG")
