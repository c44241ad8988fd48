/*
 * ParkLink: the ESP-IDF task watchdog (TWDT) and the reset reason as XS host functions.
 * The XS task subscribes itself; if it is not reset within the timeout the TWDT panics and the
 * chip restarts, and esp_reset_reason() then reads ESP_RST_TASK_WDT (ESP-IDF "Watchdogs", v5).
 */

#include "xsmc.h"
#include "xsHost.h"
#include "esp_task_wdt.h"
#include "esp_system.h"

void xs_parklink_wdt_start(xsMachine *the)
{
	esp_task_wdt_config_t config = {
		.timeout_ms = (uint32_t)xsmcToInteger(xsArg(0)),
		.idle_core_mask = 0,
		.trigger_panic = true,
	};
	if (esp_task_wdt_reconfigure(&config) == ESP_ERR_INVALID_STATE)
		esp_task_wdt_init(&config);
	esp_task_wdt_add(NULL);
}

void xs_parklink_wdt_feed(xsMachine *the)
{
	esp_task_wdt_reset();
}

void xs_parklink_wdt_stop(xsMachine *the)
{
	esp_task_wdt_delete(NULL);
}

void xs_parklink_reset_reason(xsMachine *the)
{
	xsmcSetInteger(xsResult, esp_reset_reason());
}
