"""The rules' defaults: minimum retest windows, mutual recognition by institution level, cross-reactivities.

Laboratory windows follow the issue's seed list (electrolytes 7 days, CRP 2, thyroid function 28, glucose /
lipids / albumin 30, HbA1c 60), which sits between the Royal College of Pathologists' minimum retesting
intervals (2021) and the mutual-recognition lists of Chinese provinces (检查检验结果互认项目, commonly 7–30
days for laboratory tests and 30 days for CT / MR). Imaging codes are LOINC radiology codes. An
administrator changes any of them in the admin.
"""

from django.db import migrations

LOINC = "http://loinc.org"
# (code, zh, en, window days, basis)
LABORATORY = [
    ("2951-2", "钠", "Sodium [Moles/volume] in Serum or Plasma", 7, "electrolytes"),
    ("2823-3", "钾", "Potassium [Moles/volume] in Serum or Plasma", 7, "electrolytes"),
    ("2075-0", "氯", "Chloride [Moles/volume] in Serum or Plasma", 7, "electrolytes"),
    ("2160-0", "肌酐", "Creatinine [Mass/volume] in Serum or Plasma", 7, "renal function"),
    ("3094-0", "尿素氮", "Urea nitrogen [Mass/volume] in Serum or Plasma", 7, "renal function"),
    ("1742-6", "丙氨酸氨基转移酶", "Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma", 7,
     "liver function"),
    ("1920-8", "天门冬氨酸氨基转移酶", "Aspartate aminotransferase [Enzymatic activity/volume] in Serum or Plasma",
     7, "liver function"),
    ("24323-8", "生化全套", "Comprehensive metabolic 2000 panel - Serum or Plasma", 7, "electrolytes, renal, liver"),
    ("1988-5", "C反应蛋白", "C reactive protein [Mass/volume] in Serum or Plasma", 2, "acute-phase protein"),
    ("3016-3", "促甲状腺激素", "Thyrotropin [Units/volume] in Serum or Plasma", 28, "thyroid function"),
    ("3024-7", "游离甲状腺素", "Thyroxine (T4) free [Mass/volume] in Serum or Plasma", 28, "thyroid function"),
    ("2345-7", "葡萄糖", "Glucose [Mass/volume] in Serum or Plasma", 30, "glucose"),
    ("2093-3", "总胆固醇", "Cholesterol [Mass/volume] in Serum or Plasma", 30, "lipids"),
    ("2571-8", "甘油三酯", "Triglyceride [Mass/volume] in Serum or Plasma", 30, "lipids"),
    ("2085-9", "高密度脂蛋白胆固醇", "Cholesterol in HDL [Mass/volume] in Serum or Plasma", 30, "lipids"),
    ("2089-1", "低密度脂蛋白胆固醇", "Cholesterol in LDL [Mass/volume] in Serum or Plasma", 30, "lipids"),
    ("24331-1", "血脂四项", "Lipid 1996 panel - Serum or Plasma", 30, "lipids"),
    ("1751-7", "白蛋白", "Albumin [Mass/volume] in Serum or Plasma", 30, "albumin"),
    ("3084-1", "尿酸", "Urate [Mass/volume] in Serum or Plasma", 30, "urate"),
    ("4548-4", "糖化血红蛋白", "Hemoglobin A1c/Hemoglobin.total in Blood", 60, "HbA1c"),
    ("58410-2", "血常规", "CBC panel - Blood by Automated count", 3, "blood count"),
    ("718-7", "血红蛋白", "Hemoglobin [Mass/volume] in Blood", 3, "blood count"),
    ("6690-2", "白细胞计数", "Leukocytes [#/volume] in Blood by Automated count", 3, "blood count"),
    ("777-3", "血小板计数", "Platelets [#/volume] in Blood by Automated count", 3, "blood count"),
]
# (code, zh, en, modality, body part, window days)
IMAGING = [
    ("24627-2", "胸部CT", "CT Chest", "CT", "chest", 30),
    ("24725-4", "头颅CT", "CT Head", "CT", "head", 30),
    ("24590-2", "头颅磁共振", "MR Brain", "MR", "brain", 30),
    ("36643-5", "胸部X线正侧位", "XR Chest 2 Views", "DX", "chest", 14),
    ("24558-9", "腹部超声", "US Abdomen", "US", "abdomen", 14),
]
# (allergen group, drug group, severity, note)
CROSS_REACTIVITY = [
    ("J01C", "J01DB", "warning", "penicillins → first-generation cephalosporins"),
    ("J01C", "J01DC", "warning", "penicillins → second-generation cephalosporins"),
    ("J01C", "J01DD", "warning", "penicillins → third-generation cephalosporins"),
    ("J01C", "J01DE", "warning", "penicillins → fourth-generation cephalosporins"),
    ("J01C", "J01DH", "info", "penicillins → carbapenems (cross-reactivity below 1 %)"),
    ("J01DB", "J01C", "warning", "cephalosporins → penicillins"),
    ("J01DC", "J01C", "warning", "cephalosporins → penicillins"),
    ("J01DD", "J01C", "warning", "cephalosporins → penicillins"),
    ("J01DE", "J01C", "warning", "cephalosporins → penicillins"),
    ("M01A", "B01AC06", "warning", "NSAIDs → aspirin (NSAID-exacerbated respiratory disease)"),
    ("M01A", "N02BA01", "warning", "NSAIDs → aspirin"),
    ("B01AC06", "M01A", "warning", "aspirin → NSAIDs"),
    ("N02BA01", "M01A", "warning", "aspirin → NSAIDs"),
    ("J01E", "A10BB", "info", "sulfonamide antibacterials → sulfonylureas (low)"),
    ("J01E", "C03AA", "info", "sulfonamide antibacterials → thiazides (low)"),
]


def seed(apps, schema_editor):
    RetestWindow = apps.get_model("alerts", "RetestWindow")
    Recognition = apps.get_model("alerts", "Recognition")
    CrossReactivity = apps.get_model("alerts", "CrossReactivity")
    AlertPolicy = apps.get_model("alerts", "AlertPolicy")
    for code, zh, en, days, basis in LABORATORY:
        RetestWindow.objects.get_or_create(
            system=LOINC, code=code,
            defaults={"category": "laboratory", "display": zh, "display_en": en, "window_days": days, "basis": basis},
        )
    for code, zh, en, modality, part, days in IMAGING:
        RetestWindow.objects.get_or_create(
            system=LOINC, code=code,
            defaults={"category": "imaging", "display": zh, "display_en": en, "window_days": days,
                      "modality": modality, "body_part": part, "basis": "mutual recognition of imaging"},
        )
    # Results of graded hospitals are recognised region-wide; community and unrated institutions' are not until
    # an administrator says so (per institution or per test).
    for level, recognised in (("tertiary", True), ("secondary", True), ("community", False), ("unrated", False)):
        Recognition.objects.get_or_create(level=level, institution=None, test=None, defaults={"recognised": recognised})
    for allergen, drug, severity, note in CROSS_REACTIVITY:
        CrossReactivity.objects.get_or_create(
            allergen_group=allergen, drug_group=drug, defaults={"severity": severity, "note": note}
        )
    if not AlertPolicy.objects.exists():
        AlertPolicy.objects.create()


class Migration(migrations.Migration):
    dependencies = [("alerts", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
