"""Write the binary sample documents of `data/docs/` for the document-search demo and tests.

What it writes, into `data/docs/`:

- `buck_converter_design.pdf`  - a 5-page design note on buck converters, one topic per page
- `sensor_interface_guide.pdf` - a 3-page guide to sensor signal conditioning, one topic per page
- `motor_control_manual.hwpx`  - a DC motor driver manual in HWPX (OWPML), headings in the outline styles

The other samples (`mcu_datasheet_summary.md`, `power_semiconductor_faq.html`, `electrical_safety.txt`)
are written by hand and committed as they are; `data/sample_docs_queries.jsonl` lists search queries and the
file (and PDF page) that answers each. The texts of the binary samples live below, in this script, outside the
folder, so that an ingester pointed at `data/docs/` sees documents only.

Run it from the repository root:

    uv run python data/make_sample_docs.py

Running it twice gives byte-identical files: reportlab writes in invariant mode with a fixed date, the HWPX
paragraph ids come from a seeded generator, and the HWPX zip entries carry a fixed timestamp.

The PDFs embed a subset of NanumGothic (SIL Open Font License 1.1), taken from the koreanize-matplotlib
package. All texts were written for this project (MIT).
"""

from __future__ import annotations

import io
import random
import uuid
import zipfile
from pathlib import Path
from xml.sax.saxutils import escape

import hwpx.oxml._document_impl as hwpx_impl
import koreanize_matplotlib
from hwpx import HwpxDocument
from reportlab.lib.enums import TA_LEFT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import BaseDocTemplate, Frame, PageBreak, PageTemplate, Paragraph, Spacer

HERE = Path(__file__).resolve().parent / "docs"
FONT_DIR = Path(koreanize_matplotlib.__file__).parent / "fonts"
AUTHOR = "kr-elec-embed project"
PDF_DATE = "D:20261101000000+00'00'"  # CreationDate and ModDate of every PDF
ISO_DATE = "2026-11-01T00:00:00Z"  # HWPX CreatedDate and ModifiedDate
ZIP_DATE = (2026, 11, 1, 0, 0, 0)  # timestamp of every HWPX zip entry

# ---------------------------------------------------------------------------------------------------------
# PDF texts. A document is a title, a subtitle and a list of pages; a page is a heading and a list of blocks.
# A block starting with "- " is a bullet item, one starting with "= " is a displayed formula, any other block
# is a paragraph. Each page starts on a new PDF page, so the page number of a topic is its position + 1.
# ---------------------------------------------------------------------------------------------------------

BUCK_TITLE = "벅 컨버터 설계 노트"
BUCK_SUBTITLE = "Application Note AN-0711 · 비절연 DC-DC 전원 설계 · 2026년 11월"
# The word for "step-down" in Korean is deliberately absent from this note (see sample_docs_queries.jsonl).
BUCK_PAGES = [
    (
        "1. 동작 원리와 설계 사양",
        [
            "이 노트는 벅 컨버터(buck converter)의 부품 선정과 배치 과정을 한 가지 설계 예를 따라 정리한 "
            "것이다. 벅 컨버터는 입력 전압보다 낮은 출력 전압을 만드는 비절연형 스위칭 DC-DC 컨버터로, "
            "선형 레귤레이터(LDO)와 달리 입출력 전압 차이를 열로 버리지 않기 때문에 전압 차가 크고 "
            "전류가 많을수록 유리하다.",
            "기본 회로는 하이사이드 스위치(보통 N채널 MOSFET), 로사이드 스위치 또는 환류 다이오드"
            "(freewheeling diode), 인덕터, 출력 커패시터로 구성된다. 하이사이드 스위치가 켜진 on 구간에는 "
            "인덕터 양단에 Vin - Vout이 걸려 인덕터 전류가 직선적으로 증가하고, 스위치가 꺼진 off "
            "구간에는 -Vout이 걸려 전류가 감소한다. 로사이드 자리에 다이오드 대신 MOSFET을 쓰는 방식을 "
            "동기 정류(synchronous rectification)라고 한다.",
            "정상 상태에서는 한 스위칭 주기 동안 인덕터 전압의 시간 적분이 0이 되어야 한다(volt-second "
            "balance). 여기서 연속 전도 모드(CCM, Continuous Conduction Mode)의 기본 관계식이 나온다.",
            "= D = t_on / T_sw ≈ Vout / Vin",
            "예를 들어 12 V에서 3.3 V를 만들면 듀티비는 약 0.275이다. 실제 회로에서는 스위치의 Rds(on), "
            "인덕터의 DCR, 다이오드 순방향 전압 때문에 듀티비가 이 값보다 조금 커진다. 부하가 가벼워 "
            "인덕터 전류가 주기 중에 0까지 내려가면 불연속 전도 모드(DCM)가 되는데, 이때는 위 식이 "
            "성립하지 않고 출력 전압이 부하에 따라 달라지므로 제어 루프가 이를 보정한다.",
            "제어 방식으로는 출력 전압만 되먹임하는 전압 모드와 인덕터 전류를 내부 루프로 쓰는 전류 "
            "모드(peak current mode)가 많이 쓰인다. 전류 모드는 사이클 단위 전류 제한이 자연스럽고 루프 "
            "보상이 간단하지만, 듀티비가 50%를 넘을 때 생기는 저조파 발진을 막기 위해 기울기 보상(slope "
            "compensation)이 필요하다.",
            "이 노트의 설계 예 사양은 다음과 같다.",
            "- 입력 전압 9–16 V (공칭 12 V)",
            "- 출력 3.3 V, 최대 부하 전류 3 A",
            "- 스위칭 주파수 fsw = 500 kHz, 동기 정류형 컨트롤러",
            "- 출력 전압 리플 33 mV(출력의 1%) 이하, 전부하 효율 90% 이상",
        ],
    ),
    (
        "2. 인덕터 선택",
        [
            "인덕터 값은 허용할 리플 전류 ΔIL에서 정한다. 인덕터 전류는 on 구간에 (Vin - Vout)/L의 "
            "기울기로 증가하므로 피크-투-피크 리플은 다음과 같다.",
            "= ΔIL = Vout × (1 - Vout/Vin) / (L × fsw)",
            "리플은 입력 전압이 가장 높을 때 가장 크므로 계산에는 최대 입력 전압 16 V를 넣는다. 리플 "
            "전류를 최대 출력 전류의 20–40%로 잡는 것이 일반적인 출발점이며, 여기서는 30%인 0.9 A를 "
            "목표로 한다.",
            "= L = 3.3 × (1 - 3.3/16) / (0.9 A × 500 kHz) ≈ 5.8 μH",
            "가까운 표준값 6.8 μH를 고르면 실제 리플은 약 0.77 A가 되고, 인덕터 피크 전류는 3 A + "
            "0.77 A / 2 ≈ 3.4 A이다. 인덕턴스를 정했으면 전류 정격 두 가지를 확인한다.",
            "- 포화 전류 Isat: 인덕턴스가 일정 비율(보통 20–30%) 떨어지는 전류이다. 정상 피크 전류뿐 "
            "아니라 과부하와 기동 시에 흐를 수 있는 컨트롤러의 전류 제한값보다 커야 한다. 전류 제한이 "
            "4.5 A라면 Isat 5 A 이상을 고른다.",
            "- 온도 상승 정격 전류 Irms: 권선 발열로 온도가 약 40 °C 오르는 전류이다. 리플이 작으면 "
            "인덕터 RMS 전류는 출력 전류와 거의 같으므로 3 A 이상이면 된다.",
            "DCR(직류 저항)은 도통 손실 I²R로 바로 효율에 나타난다. 3 A에서 DCR 20 mΩ이면 약 0.18 W가 "
            "손실된다. 크기를 줄이려고 DCR이 큰 소형 인덕터를 고르면 효율과 온도가 함께 나빠진다.",
            "코어 재질도 중요하다. 페라이트 코어는 주파수가 높아도 코어 손실이 작지만 Isat을 넘으면 "
            "인덕턴스가 급격히 무너진다(hard saturation). 금속 분말·금속 복합 코어는 포화가 완만해 순간 "
            "과전류에 관대하지만 고주파 코어 손실이 상대적으로 크다. 자속이 밖으로 새지 않는 차폐형"
            "(shielded) 인덕터를 쓰면 주변 회로로의 자기 결합과 EMI가 줄어든다.",
            "인덕턴스가 너무 크면 부하 변동 때 전류가 느리게 따라가 과도 응답이 나빠지고, 너무 작으면 "
            "리플 전류와 출력 리플, 코어 손실이 커진다. 전류 모드 컨트롤러는 내부 기울기 보상이 특정 "
            "인덕턴스 범위를 전제로 하므로 데이터시트의 권장 범위를 벗어나지 않도록 한다.",
        ],
    ),
    (
        "3. 입력·출력 커패시터 선택",
        [
            "출력 커패시터는 인덕터 리플 전류를 흡수해 출력 전압 리플을 정하고, 부하가 급변할 때 제어 "
            "루프가 반응하기 전까지 전하를 공급한다. 출력 리플은 용량 성분과 ESR(등가 직렬 저항) "
            "성분의 합으로 근사한다.",
            "= ΔVout ≈ ΔIL × ( ESR + 1 / (8 × fsw × Cout) )",
            "세라믹 MLCC는 ESR이 수 mΩ 수준이라 용량 항이 지배한다. ΔIL 0.77 A, 목표 리플 33 mV를 "
            "넣으면 필요한 최소 용량은 다음과 같다.",
            "= Cout ≥ 0.77 A / (8 × 500 kHz × 0.033 V) ≈ 5.8 μF",
            "리플만 보면 10 μF로도 충분하지만, 실제로는 부하 스텝 응답이 용량을 결정하는 경우가 많다. "
            "1 A 부하 스텝에서 출력 변동을 3% 안쪽으로 유지하기 위해 이 설계에서는 22 μF MLCC 두 개를 "
            "병렬로 쓴다.",
            "MLCC를 고를 때 가장 흔한 실수는 DC 바이어스 특성을 무시하는 것이다. X5R·X7R 유전체는 직류 "
            "전압이 걸리면 실효 용량이 크게 줄어든다. 정격 6.3 V, 0805 크기의 22 μF 부품은 3.3 V에서 "
            "공칭 용량의 절반 이하만 남는 경우도 있으므로, 제조사의 DC 바이어스 곡선으로 실효 용량을 "
            "확인하고 한 단계 높은 정격 전압이나 큰 케이스 크기를 고려한다.",
            "전해 커패시터나 폴리머 커패시터를 쓰면 ESR 항이 지배한다. 같은 리플 목표라면 ESR은 33 mV / "
            "0.77 A ≈ 43 mΩ 이하여야 한다. 폴리머 커패시터는 ESR이 낮고 온도 특성이 좋아 출력단에 자주 "
            "쓰이며, 일반 알루미늄 전해 커패시터는 저온에서 ESR이 크게 증가한다.",
            "입력 커패시터는 하이사이드 스위치가 켜질 때마다 사각파 형태의 전류를 공급한다. 입력 "
            "커패시터의 RMS 전류는 다음 식으로 구하며, 듀티비 0.5에서 최대(출력 전류의 절반)가 된다.",
            "= I_Cin,rms = Iout × √( D × (1 - D) )",
            "최소 입력 9 V에서 D ≈ 0.37이므로 I_Cin,rms ≈ 3 A × 0.48 ≈ 1.45 A이다. 입력에는 리플 전류 "
            "정격이 충분한 10 μF/25 V MLCC 두 개를 스위치 바로 옆에 두고, 긴 전원 케이블의 인덕턴스와 "
            "세라믹 커패시터가 만드는 공진을 감쇠시키기 위해 47 μF 전해 커패시터를 함께 둔다. "
            "커패시터의 정격 전압은 최대 입력 16 V에 서지 여유를 더해 25 V 이상으로 한다.",
        ],
    ),
    (
        "4. 효율과 손실 분석",
        [
            "효율은 η = Pout / (Pout + Ploss)이다. 손실을 항목별로 나누어 보면 어느 부품을 바꿔야 효율이 "
            "오르는지 알 수 있다. 공칭 12 V 입력, 3.3 V/3 A 출력(Pout = 9.9 W)에서 주요 손실은 다음과 "
            "같다.",
            "- 하이사이드 도통 손실: Iout² × Rds(on) × D = 9 × 0.020 Ω × 0.275 ≈ 0.05 W",
            "- 로사이드 도통 손실: Iout² × Rds(on) × (1 - D) = 9 × 0.010 Ω × 0.725 ≈ 0.065 W",
            "- 스위칭 손실: ½ × Vin × Iout × (tr + tf) × fsw = 0.5 × 12 V × 3 A × 20 ns × 500 kHz ≈ 0.18 W",
            "- 게이트 구동 손실: Qg × Vdrv × fsw, 두 MOSFET의 Qg 합계 20 nC, 5 V 구동에서 약 0.05 W",
            "- 인덕터 손실: DCR 손실 약 0.18 W, 코어 손실 약 0.05 W",
            "- 기타: 커패시터 ESR 손실, 컨트롤러 자기 소비 전류, 두 스위치가 모두 꺼진 짧은 구간의 바디 "
            "다이오드 도통과 역회복 손실, 합계 약 0.05 W",
            "합계는 약 0.63 W이고 효율은 약 94%이다. 스위칭 손실은 입력 전압과 주파수에 비례하므로 16 V "
            "입력에서는 효율이 조금 낮아진다.",
            "비동기식(다이오드) 벅과 비교하면 동기 정류의 이점이 분명하다. 순방향 전압 0.4 V 쇼트키 "
            "다이오드는 Vf × Iout × (1 - D) = 0.4 V × 3 A × 0.725 ≈ 0.87 W를 소모하는데, 이는 위 손실 "
            "전체보다 크다. 출력 전압이 낮을수록 (1 - D)가 커지고 Vf가 출력 전압에 비해 상대적으로 "
            "커지므로 동기 정류가 더 중요해진다.",
            "스위칭 주파수는 크기와 효율의 절충이다. 주파수를 두 배로 올리면 필요한 인덕턴스와 출력 "
            "용량은 대략 절반이 되지만 스위칭 손실과 게이트 구동 손실은 두 배가 된다.",
            "경부하에서는 도통 손실이 작아지는 대신 주파수에 비례하는 손실이 남아 효율이 급격히 "
            "떨어진다. 많은 컨트롤러가 경부하에서 스위칭을 간헐적으로 멈추는 버스트 모드(burst mode)나 "
            "DCM 동작으로 이를 줄이지만, 출력 리플이 커지고 잡음 주파수가 부하에 따라 변하므로 잡음에 "
            "민감한 부하에서는 강제 연속 전도(forced CCM) 설정을 선택한다.",
            "효율을 측정할 때는 입력과 출력 전압을 부하 전류가 흐르는 케이블이 아니라 보드 단자에서 "
            "따로 감지(4단자 측정)해야 케이블의 전압 강하가 손실로 잡히지 않는다.",
        ],
    ),
    (
        "5. PCB 레이아웃 지침",
        [
            "벅 컨버터의 성능과 EMI는 부품값보다 레이아웃에서 더 크게 갈리는 경우가 많다. 가장 먼저 "
            "전류가 급격히 바뀌는 경로를 찾는다. 입력 커패시터 → 하이사이드 MOSFET → 로사이드 MOSFET → "
            "입력 커패시터로 이어지는 루프는 스위칭할 때마다 전류가 끊겼다 이어지는 높은 di/dt 루프"
            "(hot loop)이다. 반면 인덕터와 출력 커패시터를 지나는 전류는 연속적이다.",
            "- 입력 세라믹 커패시터를 VIN 핀과 PGND 핀 바로 옆, 가능하면 IC와 같은 면에 둔다. hot loop "
            "면적을 줄이면 기생 인덕턴스가 줄어 스위칭 노드의 링잉과 전압 스파이크가 작아진다.",
            "- 스위칭 노드(SW)는 dv/dt가 큰 구리 면이다. 전류를 흘릴 만큼의 폭은 확보하되 면적을 필요 "
            "이상 넓히지 않는다. 넓은 SW 면은 안테나처럼 동작해 주변 신호에 용량성으로 노이즈를 "
            "결합한다.",
            "- 피드백 분압 저항은 FB 핀 가까이 두고, 출력 전압은 출력 커패시터 지점에서 감지해 가는 "
            "트레이스로 끌어온다. 이 트레이스는 SW 노드와 인덕터 아래를 지나지 않게 한다.",
            "- 스위칭 부품이 있는 층 바로 아래 층을 끊기지 않는 접지면(ground plane)으로 만든다. 귀환 "
            "전류가 바로 아래 접지면을 따라 흐르며 루프 면적이 최소가 된다. 접지면을 신호 트레이스로 "
            "가르면 귀환 경로가 우회해 EMI가 커진다.",
            "- 부트스트랩 커패시터(BST–SW)와 VCC 바이패스 커패시터는 해당 핀에 최단 거리로 연결한다.",
            "- IC의 노출 패드(exposed pad) 아래에 써멀 비아를 여러 개 배치해 내층과 뒷면 구리로 열을 "
            "퍼뜨린다. 전류 감지 저항이 있다면 감지 트레이스는 저항 패드에서 켈빈(Kelvin) 방식으로 따로 "
            "뽑는다.",
            "레이아웃 검증 단계에서 출력 리플을 측정할 때는 오실로스코프 프로브의 긴 접지 리드 대신 접지 "
            "스프링을 써서 출력 커패시터 양단에 직접 댄다. 긴 접지 리드는 hot loop의 자기장을 끌어들여 "
            "실제보다 큰 스파이크를 보여 준다. SW 노드 파형에서 링잉 주파수와 오버슈트를 확인하고, "
            "필요하면 RC 스너버를 추가한다.",
        ],
    ),
]

SENSOR_TITLE = "센서 신호 처리 가이드"
SENSOR_SUBTITLE = "아날로그 프런트엔드 설계 실무 · 2026년 11월"
SENSOR_PAGES = [
    (
        "1. 연산 증폭기와 아날로그 필터",
        [
            "대부분의 센서는 출력이 수 mV 수준으로 작거나, 출력 임피던스가 높거나, 공통 모드 전압이 "
            "얹혀 있어서 그대로 ADC에 연결하면 측정 범위를 제대로 쓰지 못한다. 신호 처리(signal "
            "conditioning) 회로는 센서 출력을 증폭하고 레벨을 옮기고 걸러서 ADC 입력 범위에 맞추는 "
            "역할을 한다.",
            "연산 증폭기(op amp)를 쓴 비반전 증폭기의 이득은 1 + Rf/Rg이며, 입력 임피던스가 매우 높아 "
            "센서에 부하를 주지 않는다. 스트레인 게이지나 압력 센서처럼 브리지 형태로 차동 출력을 내는 "
            "센서에는 계측 증폭기(instrumentation amplifier, INA)를 쓴다. 계측 증폭기는 저항 하나로 "
            "이득을 정하고 공통 모드 제거비(CMRR)가 높아, 두 입력에 똑같이 실린 잡음과 공통 모드 전압을 "
            "제거한다.",
            "연산 증폭기를 고를 때는 다음 항목을 확인한다.",
            "- 입력 오프셋 전압(Vos)과 온도 드리프트: 이득 100에서 Vos 1 mV는 출력에서 100 mV 오차가 "
            "된다. 정밀 측정에는 제로 드리프트(chopper) 증폭기를 검토한다.",
            "- 이득 대역폭 곱(GBW): 이득 100으로 1 kHz 신호를 다루려면 최소 100 kHz가 필요하고, 이득 "
            "오차를 줄이려면 그 10배 정도의 여유를 둔다.",
            "- 입출력 범위: 단일 3.3 V 전원이라면 레일 투 레일(rail-to-rail) 입출력인지, 출력이 0 V "
            "근처까지 내려가는지 확인한다.",
            "- 입력 바이어스 전류: 수 MΩ 이상의 고임피던스 센서에는 pA급 CMOS 입력 증폭기가 유리하다.",
            "ADC 앞에는 안티앨리어싱(anti-aliasing) 저역 통과 필터를 둔다. 샘플링 주파수의 절반(나이퀴스트 "
            "주파수)보다 높은 성분은 샘플링 뒤 낮은 주파수로 접혀 들어와 디지털 필터로도 제거할 수 없다. "
            "1차 RC 필터의 차단 주파수는 fc = 1/(2πRC)로, 1.6 kΩ과 100 nF이면 약 1 kHz이다. 1차 필터는 "
            "-20 dB/dec로 완만하므로 감쇠가 더 필요하면 연산 증폭기로 만든 2차 샐런-키(Sallen-Key) "
            "버터워스 필터(-40 dB/dec)를 쓴다.",
            "필터의 저항과 커패시터는 ADC 내부의 샘플링 커패시터를 충전하는 경로이기도 하다. 저항이 너무 "
            "크면 정해진 시간 안에 충전이 끝나지 않아 오차가 생기므로, ADC 입력 바로 앞에 작은 커패시터를 "
            "두거나 버퍼 증폭기로 구동한다. 50/60 Hz 상용 전원 잡음은 차동 측정과 차폐로 줄이고, 남은 "
            "성분은 전원 주기의 정수배 동안 평균해 없앤다.",
        ],
    ),
    (
        "2. 서미스터 온도 측정",
        [
            "서미스터(thermistor)는 온도에 따라 저항이 크게 변하는 반도체 소자다. 온도가 오르면 저항이 "
            "줄어드는 NTC 서미스터가 온도 측정에 주로 쓰이고, 특정 온도에서 저항이 급증하는 PTC "
            "서미스터는 과전류·과열 보호용 소자로 많이 쓰인다. NTC는 25 °C 기준 저항 R25(예: 10 kΩ)와 "
            "B 상수(예: 3435 K)로 특성을 나타낸다.",
            "B 상수 모델에서 저항 R과 절대 온도 T의 관계는 다음과 같다.",
            "= 1/T = 1/T0 + (1/B) × ln(R/R0)    (T0 = 298.15 K, R0 = R25)",
            "B 상수 모델은 기준 온도 근처에서는 충분히 정확하지만 범위가 넓어질수록 오차가 커진다. 넓은 "
            "범위를 정확하게 변환하려면 세 계수를 쓰는 스타인하트-하트(Steinhart-Hart) 식 1/T = A + "
            "B·ln R + C·(ln R)³을 쓰거나, 제조사의 R-T 표로 룩업 테이블을 만든다.",
            "가장 흔한 회로는 고정 저항과 서미스터를 직렬로 연결한 분압기다. 3.3 V와 접지 사이에 10 kΩ "
            "고정 저항과 10 kΩ NTC를 두면 25 °C에서 분압 출력은 1.65 V이다. 분압기 전원과 ADC 기준 "
            "전압을 같은 전원에서 가져오는 비율 측정(ratiometric) 구성으로 만들면 전원 전압의 변동이 "
            "변환 결과에서 상쇄된다. 서미스터가 접지 쪽에 있을 때 ADC 값 N과 풀스케일 값 N_max로부터 "
            "서미스터 저항은 R_NTC = R_fixed × N / (N_max - N)으로 구한다.",
            "고정 저항은 관심 온도 범위의 가운데에서 서미스터 저항과 비슷한 값으로 고르면 그 근처의 "
            "감도가 가장 커진다. 고정 저항으로는 온도 계수가 낮은 1% 이하 정밀 저항을 쓴다.",
            "자기 발열(self-heating)에 주의한다. 서미스터에 흐르는 전류가 만든 전력이 소자를 스스로 "
            "데워 측정값이 실제보다 높게 나온다. 오차는 소비 전력을 방열 계수(dissipation constant, "
            "mW/°C)로 나눈 값이다. 위 회로의 25 °C 소비 전력은 1.65² / 10 kΩ ≈ 0.27 mW이므로 방열 계수가 "
            "1.5 mW/°C라면 오차는 약 0.18 °C이다. 오차를 줄이려면 분압기 저항을 키우거나 측정하는 "
            "순간에만 전원을 넣는다.",
            "서미스터까지 배선이 길면 잡음이 실리므로 ADC 입력 쪽에 RC 필터를 두고 여러 번 측정해 "
            "평균한다. 백금 측온 저항체(RTD, Pt100 등)는 선형성과 안정성이 좋지만 감도가 작아 정밀 "
            "전류원과 증폭이 필요하고, 열전대(thermocouple)는 고온 측정에 유리하지만 냉접점 보상이 "
            "필요하다는 점에서 서미스터와 쓰임새가 다르다.",
        ],
    ),
    (
        "3. 4-20 mA 전류 루프",
        [
            "4-20 mA 전류 루프는 공장 자동화와 공정 계측에서 센서 값을 수백 m 떨어진 PLC나 DCS로 보내는 "
            "표준 아날로그 신호 방식이다. 전압 대신 전류로 값을 보내므로 배선 저항에 의한 전압 강하가 "
            "측정값에 영향을 주지 않고, 임피던스가 낮은 루프라 유도 잡음에도 강하다.",
            "측정 범위의 최솟값을 0 mA가 아니라 4 mA로 두는 것을 live zero라고 한다. 신호가 0 mA이면 "
            "단선이나 전원 상실로 판단할 수 있고, 2선식 송신기는 이 4 mA 안쪽의 전류로 자기 회로를 "
            "구동할 수 있다. 널리 쓰이는 NAMUR NE43 권고는 3.8–20.5 mA를 측정 범위로, 3.6 mA 이하나 "
            "21 mA 이상을 고장 신호로 쓴다.",
            "루프는 직류 루프 전원(보통 24 V), 송신기(transmitter), 수신 측 측정 저항, 배선으로 이루어진 "
            "하나의 직렬 회로다. 전류는 루프 어디에서나 같으므로 수신 측은 정밀 저항에 걸린 전압으로 "
            "값을 읽는다. 250 Ω 저항을 쓰면 4–20 mA가 1–5 V로 바뀐다.",
            "루프 전압 예산(loop budget)을 반드시 계산한다. 전원 전압은 20 mA에서 송신기의 최소 동작 "
            "전압과 모든 저항 성분의 전압 강하를 더한 값보다 커야 한다.",
            "= R_loop,max = (V_supply - V_tx,min) / 0.020 A",
            "예를 들어 24 V 전원에 송신기 최소 동작 전압이 12 V이면 (24 - 12) / 0.02 = 600 Ω까지 "
            "허용된다. 측정 저항 250 Ω과 왕복 배선 저항 20 Ω을 빼도 여유가 있지만, 표시기나 절연기를 "
            "루프에 추가할 때마다 그 입력 저항을 더해 다시 확인한다.",
            "전류를 공학 단위로 바꾸는 식은 값 = (I - 4 mA) / 16 mA × (상한 - 하한) + 하한이다. 0–100 °C "
            "범위의 온도 송신기가 12 mA를 보내면 50 °C이다.",
            "배선 방식에는 2선식, 3선식, 4선식이 있다. 2선식은 두 선이 전원과 신호를 함께 나르는 루프 "
            "전원(loop-powered) 방식이라 배선이 간단하지만, 송신기가 쓸 수 있는 전력이 4 mA 미만의 "
            "전류로 제한된다. 전력이 많이 필요한 분석기나 유량계는 전원을 따로 받는 4선식을 쓴다.",
            "현장 배선에는 꼬인 차폐선(twisted shielded pair)을 쓰고, 차폐는 한쪽 끝에서만 접지해 접지 "
            "루프를 피한다. 수신 입력에는 역극성 보호 다이오드와 서지용 TVS 다이오드를 두고, 전위차가 큰 "
            "설비 사이에는 루프 절연기(isolator)를 넣는다. HART 프로토콜을 쓰면 같은 두 선 위에 디지털 "
            "신호를 겹쳐 진단 정보와 설정값을 주고받을 수 있다.",
        ],
    ),
]

# ---------------------------------------------------------------------------------------------------------
# HWPX text. A block is (kind, content): kind 1 or 2 is a heading of that outline level (styles "개요 1",
# "개요 2"), "p" a body paragraph (style "본문"), "table" a list of rows whose first row is the header.
# ---------------------------------------------------------------------------------------------------------

MOTOR_TITLE = "DC 모터 드라이버 MDB-2410 사용 설명서"
MOTOR_SUBTITLE = "정격 24 V / 10 A · 브러시 DC 모터용 H-브리지 드라이버 · 문서 버전 1.2 (2026년 11월)"
MOTOR_BLOCKS = [
    (1, "제품 개요"),
    (
        "p",
        "MDB-2410은 브러시 DC 모터 한 대를 정회전·역회전·제동 제어하는 H-브리지 드라이버 보드이다. 입력 "
        "전원 12–24 V, 연속 출력 전류 10 A를 지원하며, 네 개의 N채널 MOSFET, 하프 브리지 게이트 "
        "드라이버 두 개, 션트 저항 기반 전류 감지 회로, 증분형 엔코더 입력 회로로 구성된다. 상위 "
        "제어기(MCU나 PLC)가 방향 신호와 속도 지령을 직접 주거나, 보드에 내장된 속도 제어 루프를 UART "
        "명령으로 설정해 사용한다.",
    ),
    (
        "p",
        "이 설명서는 모터 구동의 기본 원리인 펄스 폭 변조, H-브리지, 데드 타임, 엔코더 피드백을 차례로 "
        "설명하고, 각 항목에 해당하는 보드 설정값을 함께 제시한다.",
    ),
    (1, "펄스 폭 변조(PWM)"),
    (
        "p",
        "펄스 폭 변조(PWM, Pulse Width Modulation)는 전원을 일정한 주기로 빠르게 켜고 끄면서, 한 주기 "
        "안에서 켜져 있는 시간의 비율을 바꾸어 부하에 걸리는 평균 전압을 조절하는 방법이다. 스위치는 "
        "완전히 켜지거나 완전히 꺼진 상태로만 동작하므로, 트랜지스터를 중간 상태에 두고 남는 전압을 "
        "열로 버리는 선형 제어보다 손실이 훨씬 작다.",
    ),
    (
        "p",
        "모터 권선은 인덕턴스를 가지고 있어 전류가 급격히 변하지 못한다. 그래서 스위칭 주파수가 "
        "충분히 높으면 권선 전류는 작은 리플만 가진 거의 일정한 값이 되고, 모터는 평균 전압이 연속으로 "
        "걸린 것처럼 회전한다.",
    ),
    (2, "듀티 사이클"),
    (
        "p",
        "듀티 사이클(duty cycle, 듀티비)은 한 주기 T 가운데 스위치가 켜져 있는 시간 t_on의 비율이다. "
        "D = t_on / T × 100 [%]로 나타내며, 모터에 걸리는 평균 전압은 V_avg = D × V_supply이다. 예를 "
        "들어 24 V 전원에서 듀티 사이클이 25%이면 평균 6 V, 75%이면 평균 18 V가 걸린다. 무부하 상태에서 "
        "DC 모터의 회전 속도는 인가 전압에 거의 비례하므로, 듀티 사이클을 바꾸는 것이 곧 속도 지령을 "
        "바꾸는 것이다.",
    ),
    (
        "p",
        "MCU 타이머로 PWM을 만들 때는 카운터 주기 값과 비교 값으로 듀티 사이클을 정한다. 카운터가 0부터 "
        "999까지 세는 동안 비교 값 250보다 작은 구간에서 출력을 High로 두면 듀티 사이클은 25%가 된다. "
        "주기 값이 클수록 듀티 사이클을 잘게 나눌 수 있지만, 같은 타이머 클럭에서는 PWM 주파수가 "
        "낮아진다.",
    ),
    (2, "PWM 주파수 선택"),
    (
        "p",
        "PWM 주파수가 너무 낮으면 권선 전류의 리플이 커져 토크가 맥동하고, 수 kHz 대역에서는 권선과 "
        "기구부가 진동해 귀에 거슬리는 소음이 난다. 그래서 소형 모터 드라이버는 가청 대역을 벗어난 "
        "20 kHz 전후를 많이 쓴다. 반대로 주파수를 올리면 스위칭할 때마다 생기는 손실이 주파수에 "
        "비례해 늘어나 MOSFET 온도가 올라간다.",
    ),
    (
        "p",
        "기준은 모터의 전기적 시정수 τ = L/R이다. PWM 주기가 τ보다 충분히 짧아야 전류 리플이 작다. "
        "MDB-2410의 기본 PWM 주파수는 20 kHz이며, 설정 명령으로 1–50 kHz 범위에서 바꿀 수 있다. 권선 "
        "인덕턴스가 매우 작은 코어리스 모터에는 더 높은 주파수를 권장한다.",
    ),
    (1, "H-브리지 구동"),
    (
        "p",
        "H-브리지는 모터 양 끝을 각각 하프 브리지(상단 스위치와 하단 스위치 한 쌍)에 연결한 회로이다. "
        "회로도에서 네 개의 스위치와 가운데의 모터가 영문자 H 모양을 이루어 이런 이름이 붙었다. 왼쪽 "
        "레그를 Q1(상단)과 Q2(하단), 오른쪽 레그를 Q3(상단)과 Q4(하단)라고 하면, Q1과 Q4를 켤 때 "
        "전류가 모터를 왼쪽에서 오른쪽으로 흐르고, Q3와 Q2를 켤 때 반대 방향으로 흐른다.",
    ),
    (
        "p",
        "같은 레그의 상단과 하단 스위치가 동시에 켜지면 전원이 모터를 거치지 않고 곧바로 접지로 "
        "단락된다. 이를 관통 전류(shoot-through)라고 하며, 아주 짧은 순간이라도 MOSFET을 파손시킬 수 "
        "있다. 뒤에서 설명할 데드 타임이 이를 막는다.",
    ),
    (2, "구동 모드"),
    ("p", "H-브리지의 스위치 조합에 따른 구동 모드는 다음 표와 같다."),
    (
        "table",
        [
            ["모드", "켜지는 스위치", "모터 상태"],
            ["정회전", "Q1, Q4", "정방향 전류로 회전"],
            ["역회전", "Q3, Q2", "역방향 전류로 회전"],
            ["코스트(coast)", "없음", "전원에서 분리되어 관성으로 서서히 정지"],
            ["브레이크(brake)", "Q2, Q4", "단자가 단락되어 역기전력으로 빠르게 제동"],
        ],
    ),
    (
        "p",
        "속도를 제어할 때는 한쪽 레그에 PWM을 걸고 다른 레그의 하단 스위치를 켜 둔다. PWM의 off 구간에 "
        "전류가 어느 경로로 흐르게 하느냐에 따라, 하단 스위치들로 권선을 단락시켜 전류를 순환시키는 "
        "slow decay와 권선에 역전압을 걸어 전류를 전원으로 되돌리는 fast decay로 나뉜다. slow decay는 "
        "전류 리플이 작아 저속 제어에 유리하고, fast decay는 전류가 빨리 줄어 전류 제어 응답이 빠르다.",
    ),
    (2, "부트스트랩 게이트 구동"),
    (
        "p",
        "상단 N채널 MOSFET을 완전히 켜려면 게이트 전압이 소스(모터 단자) 전압보다 10 V 정도 높아야 "
        "하므로 전원 전압보다 높은 구동 전압이 필요하다. MDB-2410의 게이트 드라이버는 하단 스위치가 "
        "켜져 있는 동안 부트스트랩 커패시터를 충전하고, 상단 스위치를 켤 때 이 커패시터 전압을 게이트에 "
        "공급한다. 이 방식에서는 커패시터를 주기적으로 다시 충전해야 하므로 듀티 사이클을 100%로 유지할 "
        "수 없으며, 보드는 최대 듀티 사이클을 98%로 제한한다.",
    ),
    (1, "데드 타임"),
    (
        "p",
        "데드 타임(dead time)은 같은 레그의 한 스위치를 끈 뒤 다른 스위치를 켜기 전까지 두 스위치를 모두 "
        "꺼 두는 짧은 시간이다. MOSFET은 게이트 신호가 꺼져도 실제로 전류가 차단될 때까지 턴오프 지연과 "
        "하강 시간이 걸린다. 그동안 반대쪽 스위치가 켜지면 관통 전류가 흐르므로, 두 게이트 신호 사이에 "
        "의도적인 간격을 둔다.",
    ),
    (
        "p",
        "데드 타임은 짧을수록 좋지만 너무 짧아서는 안 된다. 최소 데드 타임은 소자의 최대 턴오프 지연"
        "(하강 시간 포함)에서 최소 턴온 지연을 뺀 값에, 게이트 드라이버 채널 사이의 전파 지연 차이와 "
        "온도·부품 편차에 대한 여유를 더해 정한다. MOSFET을 쓰는 저전압 드라이버에서는 수백 ns, IGBT "
        "인버터에서는 보통 1–3 μs 수준이다.",
    ),
    (
        "p",
        "데드 타임 동안에도 모터 권선 전류는 계속 흐르므로 MOSFET의 바디 다이오드가 전류를 이어받는다. "
        "그래서 다이오드 도통 손실이 생기고, 실제 출력 전압이 지령보다 작아지거나 커지는 전압 오차가 "
        "생긴다. 이 오차는 듀티 사이클이 작은 저속 영역에서 상대적으로 커서 속도 맥동의 원인이 되므로, "
        "정밀한 제어에서는 전류 방향에 따라 듀티 사이클을 보정하는 데드 타임 보상을 적용한다.",
    ),
    (2, "데드 타임 설정과 확인"),
    (
        "p",
        "MDB-2410의 기본 데드 타임은 500 ns이며, DT 명령으로 200 ns–2 μs 범위에서 100 ns 단위로 "
        "설정한다. 설정을 바꾼 뒤에는 오실로스코프로 같은 레그의 상단·하단 게이트-소스 전압을 동시에 "
        "측정해 두 신호가 겹치는 구간이 없는지 확인하고, 전류 프로브로 스위칭 순간의 전원 전류 "
        "스파이크를 점검한다. 데드 타임을 늘렸는데도 MOSFET 온도가 계속 높다면 관통 전류보다 스위칭 "
        "손실이나 도통 손실을 의심한다.",
    ),
    (1, "엔코더 피드백"),
    (
        "p",
        "정확한 속도 제어와 위치 제어를 하려면 모터 축의 실제 움직임을 측정해 되먹임해야 한다. "
        "MDB-2410은 5 V 오픈 컬렉터 또는 푸시풀 출력의 증분형(incremental) 엔코더를 A상, B상, Z상 "
        "입력으로 받는다.",
    ),
    (2, "직교 신호와 4체배"),
    (
        "p",
        "증분형 엔코더는 축이 회전하면 위상이 90° 어긋난 두 구형파 A상과 B상을 내보낸다. A상이 B상보다 "
        "앞서는지 뒤지는지로 회전 방향을 알 수 있다. A상과 B상의 상승·하강 에지를 모두 세는 4체배 방식을 "
        "쓰면 분해능이 한 회전당 펄스 수(PPR)의 4배가 된다. 500 PPR 엔코더라면 한 회전에 2000 카운트를 "
        "얻는다. Z상은 한 회전에 한 번 나오는 기준 신호로, 원점 복귀에 쓴다.",
    ),
    (2, "속도 계산"),
    (
        "p",
        "정해진 시간 Δt 동안 늘어난 카운트 수로 속도를 구하는 방법을 M법이라고 한다. 회전 속도[rpm] = "
        "(Δcount / CPR) / Δt × 60이며, CPR은 한 회전당 카운트 수이다. 예를 들어 CPR 2000인 엔코더에서 "
        "10 ms 동안 400 카운트가 늘었다면 0.2회전 / 0.01 s = 20 rps, 즉 1200 rpm이다. 저속에서는 측정 "
        "주기 안에 들어오는 카운트가 적어 분해능이 나빠지므로, 펄스 사이의 시간 간격을 재는 T법이나 두 "
        "방법을 섞은 M/T법을 쓴다.",
    ),
    (2, "속도 제어 루프"),
    (
        "p",
        "내장 속도 제어기는 1 kHz 주기로 엔코더 속도를 읽고, 목표 속도와의 오차를 PI 제어기에 넣어 다음 "
        "주기의 듀티 사이클을 계산한다. 비례 이득을 키우면 응답이 빨라지지만 오버슈트와 진동이 생기고, "
        "적분 이득은 정상 상태 오차를 없앤다. 듀티 사이클이 한계값에 걸려 있는 동안 적분값이 계속 "
        "쌓이면 큰 오버슈트가 생기므로, 출력이 포화되면 적분을 멈추는 안티 와인드업(anti-windup)을 "
        "적용한다.",
    ),
    (
        "p",
        "엔코더 A상과 B상 배선이 바뀌면 되먹임 부호가 반대가 되어 모터가 최고 속도로 폭주한다. 처음 "
        "연결할 때는 낮은 듀티 사이클로 모터를 돌려 회전 방향과 카운트가 늘어나는 방향이 같은지 먼저 "
        "확인한다.",
    ),
    (1, "보호 기능과 주의 사항"),
    (
        "p",
        "보드는 과전류(션트 저항으로 측정, 기본 15 A에서 차단), 저전압(9 V 이하), 과열(방열판 온도 "
        "90 °C 이상)을 감지하면 모든 스위치를 끄고 오류 LED를 점멸한다. 모터를 급감속하거나 외력으로 "
        "돌리면 모터가 발전기로 동작해 에너지가 전원 쪽으로 되돌아오고 전원 전압이 올라간다. 배터리가 "
        "아닌 전원 공급기를 쓸 때는 이 회생 에너지를 흡수할 제동 저항이나 과전압 클램프 회로를 "
        "추가한다.",
    ),
]


# ---------------------------------------------------------------------------------------------------------
# PDF writer
# ---------------------------------------------------------------------------------------------------------


def _register_fonts() -> None:
    if "NanumGothic" not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont("NanumGothic", str(FONT_DIR / "NanumGothic.ttf")))


def _styles() -> dict[str, ParagraphStyle]:
    # One font only (regular; headings differ by size and colour): each 256-glyph Hangul subset costs ~45 KB.
    # Words are separated by spaces in Korean, so the default word wrap keeps every word on one line and
    # text extraction gives the words back whole ("CJK" wrap would break lines inside words).
    body = ParagraphStyle(
        "body", fontName="NanumGothic", fontSize=10, leading=15.5, alignment=TA_LEFT, spaceAfter=5
    )
    return {
        "title": ParagraphStyle("title", fontName="NanumGothic", fontSize=19, leading=25, spaceAfter=4),
        "subtitle": ParagraphStyle("subtitle", parent=body, fontSize=9, textColor="#555555", spaceAfter=14),
        "heading": ParagraphStyle(
            "heading", fontName="NanumGothic", fontSize=14, leading=20, textColor="#1F3A68", spaceAfter=8
        ),
        "body": body,
        "formula": ParagraphStyle("formula", parent=body, leftIndent=24, spaceBefore=2, spaceAfter=7),
        "bullet": ParagraphStyle(
            "bullet", parent=body, leftIndent=14, bulletIndent=4, bulletFontName="NanumGothic", spaceAfter=3
        ),
    }


class _NoteTemplate(BaseDocTemplate):
    """A one-frame A4 template that adds a PDF outline entry for every page heading."""

    def __init__(self, path: Path, title: str, subject: str):
        super().__init__(
            str(path),
            pagesize=A4,
            leftMargin=22 * mm,
            rightMargin=22 * mm,
            topMargin=20 * mm,
            bottomMargin=20 * mm,
            title=title,
            author=AUTHOR,
            subject=subject,
            creator="data/make_sample_docs.py",
            lang="ko-KR",
            invariant=1,
        )
        frame = Frame(self.leftMargin, self.bottomMargin, self.width, self.height, id="body")
        self.addPageTemplates([PageTemplate(id="page", frames=[frame], onPageEnd=self._footer)])
        self._short_title = title

    def _footer(self, canvas, doc) -> None:
        if doc.page == 1:
            canvas.setDateFormatter(lambda *_: PDF_DATE)
        canvas.saveState()
        canvas.setFont("NanumGothic", 8)
        canvas.setFillColor("#777777")
        canvas.drawRightString(A4[0] - 22 * mm, 12 * mm, f"{self._short_title} · {doc.page}")
        canvas.restoreState()

    def afterFlowable(self, flowable) -> None:
        if isinstance(flowable, Paragraph) and flowable.style.name == "heading":
            key = f"p{self.page}"
            self.canv.bookmarkPage(key)
            self.canv.addOutlineEntry(flowable.getPlainText(), key, level=0)


def _check_glyphs(texts: list[str]) -> None:
    """Fail if a character has no glyph in NanumGothic (it would print as a blank box)."""
    font = pdfmetrics.getFont("NanumGothic").face
    missing = sorted({ch for text in texts for ch in text if ch != "\n" and ord(ch) not in font.charToGlyph})
    if missing:
        raise ValueError(f"characters without a NanumGothic glyph: {missing!r}")


def write_pdf(path: Path, title: str, subtitle: str, pages: list[tuple[str, list[str]]]) -> None:
    _register_fonts()
    _check_glyphs(["•", title, subtitle] + [h for h, _ in pages] + [b for _, blocks in pages for b in blocks])
    st = _styles()
    story: list = [Paragraph(escape(title), st["title"]), Paragraph(escape(subtitle), st["subtitle"])]
    for i, (heading, blocks) in enumerate(pages):
        if i:
            story.append(PageBreak())
        story.append(Paragraph(escape(heading), st["heading"]))
        for block in blocks:
            if block.startswith("- "):
                story.append(Paragraph(escape(block[2:]), st["bullet"], bulletText="•"))
            elif block.startswith("= "):
                story.append(Paragraph(escape(block[2:]), st["formula"]))
            else:
                story.append(Paragraph(escape(block), st["body"]))
        story.append(Spacer(1, 4))
    doc = _NoteTemplate(path, title, subtitle)
    doc.build(story)
    if doc.page != len(pages):
        raise ValueError(f"{path.name}: {doc.page} PDF pages for {len(pages)} topics; a topic overflowed")


# ---------------------------------------------------------------------------------------------------------
# HWPX writer
# ---------------------------------------------------------------------------------------------------------


def _seed_paragraph_ids(seed: int) -> None:
    """python-hwpx draws paragraph and object ids from uuid4(); draw them from a seeded generator instead.

    `hwpx.oxml._document_impl.uuid4` is the seam the library keeps for this (it forwards the assignment).
    """
    rng = random.Random(seed)
    hwpx_impl.uuid4 = lambda: uuid.UUID(int=rng.getrandbits(128))


def _fixed_zip(data: bytes) -> bytes:
    """Rewrite a zip with the same entries in the same order, each with a fixed timestamp and attributes."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=ZIP_DATE)
            fixed.compress_type = info.compress_type  # "mimetype" stays first and stored, as OCF requires
            fixed.create_system = 0
            fixed.external_attr = 0
            dst.writestr(fixed, src.read(info.filename), compresslevel=9)
    return out.getvalue()


def write_hwpx(path: Path, title: str, subtitle: str, blocks: list) -> None:
    _seed_paragraph_ids(seed=2410)
    doc = HwpxDocument.new()
    # The blank-document skeleton carries its own author, dates and preview image: replace them.
    doc.parts.clear_document_metadata(keep=("language",), timestamp=ISO_DATE)
    doc.parts.set_document_metadata(title=title, creator=AUTHOR, subject=subtitle)
    doc.parts.clear_preview()
    title_run = doc.styles.ensure_run(bold=True, size=16)
    heading_run = doc.styles.ensure_run(bold=True)
    doc.add_paragraph(title, style="바탕글", char_pr_id_ref=title_run)
    doc.add_paragraph(subtitle, style="바탕글")
    for kind, content in blocks:
        if kind in (1, 2):
            doc.add_heading(content, level=kind, char_pr_id_ref=heading_run)
        elif kind == "p":
            doc.add_paragraph(content, style="본문")
        elif kind == "table":
            table = doc.add_table(len(content), len(content[0]))
            # The first row is a header row: OWPML marks it on its cells, <hp:tc header="1">.
            table.element.set("repeatHeader", "1")
            for c in range(len(content[0])):
                table.cell(0, c).element.set("header", "1")
            for r, row in enumerate(content):
                for c, cell in enumerate(row):
                    table.set_cell_text(r, c, cell)
        else:
            raise ValueError(f"unknown block kind {kind!r}")
    path.write_bytes(_fixed_zip(doc.to_bytes()))


# ---------------------------------------------------------------------------------------------------------


def main() -> None:
    # The buck note must be found for "강압 컨버터" by meaning alone, so the word must not appear in it.
    buck_text = " ".join([BUCK_TITLE, BUCK_SUBTITLE] + [h + " ".join(b) for h, b in BUCK_PAGES])
    assert "강압" not in buck_text
    write_pdf(HERE / "buck_converter_design.pdf", BUCK_TITLE, BUCK_SUBTITLE, BUCK_PAGES)
    write_pdf(HERE / "sensor_interface_guide.pdf", SENSOR_TITLE, SENSOR_SUBTITLE, SENSOR_PAGES)
    write_hwpx(HERE / "motor_control_manual.hwpx", MOTOR_TITLE, MOTOR_SUBTITLE, MOTOR_BLOCKS)
    for name in ("buck_converter_design.pdf", "sensor_interface_guide.pdf", "motor_control_manual.hwpx"):
        print(f"wrote data/docs/{name} ({(HERE / name).stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
