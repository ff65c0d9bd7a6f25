"""The registry in the Django admin: editable, searchable, and refusing wrong codes with a message."""

import re

import pytest
from django.urls import reverse

from registry.models import Institution, SourceSystem
from registry.services import source_system_authenticate
from tests.registry.factories import InstitutionFactory, PractitionerFactory, credit_code

pytestmark = pytest.mark.django_db


def institution_form(**overrides):
    code = credit_code(7)
    data = {
        "name": "天河区第五人民医院",
        "code": code,
        "kind": "hospital",
        "level": "secondary",
        "active": "on",
        "division_code": "440106",
        "district": "石牌街道",
        "licence_number": f"{code[8:17]}44010611A1000",
        "licence_valid_from": "2024-01-01",
        "licence_valid_until": "2029-01-01",
        # Inline formsets' management forms.
        "departments-TOTAL_FORMS": "0",
        "departments-INITIAL_FORMS": "0",
        "source_systems-TOTAL_FORMS": "0",
        "source_systems-INITIAL_FORMS": "0",
    }
    return {**data, **overrides}


def test_admin_adds_an_institution(admin_client_zh):
    response = admin_client_zh.post(reverse("admin:registry_institution_add"), institution_form())
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert Institution.objects.get().name == "天河区第五人民医院"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("code", "124401064552762738", "wrong check character"),
        ("code", "12440106455276273", "18-character unified social credit code"),
        ("licence_number", "12345", "22 characters"),
    ],
)
def test_admin_rejects_a_wrong_code_or_licence_with_a_message(admin_client_zh, field, value, message, settings):
    settings.LANGUAGE_CODE = "en"
    response = admin_client_zh.post(
        reverse("admin:registry_institution_add"), institution_form(**{field: value}), HTTP_ACCEPT_LANGUAGE="en"
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert field in errors
    assert message in " ".join(errors[field])
    assert message in response.content.decode()  # shown to the administrator, beside the field
    assert not Institution.objects.exists()


def test_admin_adding_a_source_system_shows_its_secret_once(admin_client_zh):
    inst = InstitutionFactory()
    response = admin_client_zh.post(
        reverse("admin:registry_sourcesystem_add"),
        {
            "institution": inst.pk,
            "kind": "LIS",
            "name": "检验系统",
            "sending_application": "HUAYI_LIS",
            "sending_facility": inst.code,
            "active": "on",
        },
        follow=True,
    )
    source = SourceSystem.objects.get()
    shown = [str(m) for m in response.context["messages"]]
    message = next(m for m in shown if source.client_id in m)
    secret = re.search(r"(?:secret|密钥) (\S+) ", message).group(1)
    assert source_system_authenticate(client_id=source.client_id, secret=secret) == source


@pytest.mark.parametrize(
    "model",
    [
        "institution",
        "department",
        "practitioner",
        "sourcesystem",
        "codesystem",
        "concept",
        "conceptmapentry",
        "unmappedcode",
        "drugingredient",
        "drugclassmember",
    ],
)
def test_every_registry_list_opens_searches_and_filters(admin_client_zh, model):
    PractitionerFactory.create_batch(3)
    url = reverse(f"admin:registry_{model}_changelist")
    assert admin_client_zh.get(url).status_code == 200
    assert admin_client_zh.get(url, {"q": "测试"}).status_code == 200


def test_practitioner_list_query_count_does_not_grow_with_rows(admin_client_zh, django_assert_max_num_queries):
    PractitionerFactory.create_batch(30)
    with django_assert_max_num_queries(12):
        assert admin_client_zh.get(reverse("admin:registry_practitioner_changelist")).status_code == 200


def test_admin_speaks_chinese_by_default_with_our_own_labels_and_errors(admin_client_zh):
    response = admin_client_zh.post(
        reverse("admin:registry_institution_add"), institution_form(code="124401064552762738")
    )
    page = response.content.decode()
    assert "机构代码的校验码错误" in page  # our validator's message, translated
    assert "许可证有效期至" in page  # our field label
    assert not Institution.objects.exists()
