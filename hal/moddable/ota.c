/*
 * ParkLink: the two application slots (ota_0, ota_1) and the boot selector (otadata) as XS host
 * functions over ESP-IDF's app_update and partition APIs (esp_ota_ops.h, esp_partition.h, v5).
 * Moddable's `ota` module is not used for the download: its constructor calls esp_ota_begin, which
 * erases the whole slot, and it writes only in sequence, so a download could not resume after a
 * power cut. Slots are written here at an offset instead, then selected with
 * esp_ota_set_boot_partition (which verifies the image as the bootloader will). Rollback needs
 * CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE in the build's sdkconfig.
 */

#include "xsmc.h"
#include "xsHost.h"
#include "esp_ota_ops.h"
#include "esp_partition.h"
#include "esp_system.h"

static const esp_partition_t *slotPartition(xsMachine *the, int slot)
{
	const esp_partition_t *p = esp_partition_find_first(ESP_PARTITION_TYPE_APP,
		slot ? ESP_PARTITION_SUBTYPE_APP_OTA_1 : ESP_PARTITION_SUBTYPE_APP_OTA_0, NULL);
	if (NULL == p)
		xsUnknownError("no ota partition");
	return p;
}

void xs_parklink_ota_running(xsMachine *the)
{
	const esp_partition_t *p = esp_ota_get_running_partition();
	xsmcSetInteger(xsResult, (p && p->subtype == ESP_PARTITION_SUBTYPE_APP_OTA_1) ? 1 : 0);
}

void xs_parklink_ota_size(xsMachine *the)
{
	xsmcSetInteger(xsResult, slotPartition(the, xsmcToInteger(xsArg(0)))->size);
}

void xs_parklink_ota_read(xsMachine *the)
{
	const esp_partition_t *p = slotPartition(the, xsmcToInteger(xsArg(0)));
	int offset = xsmcToInteger(xsArg(1));
	int length = xsmcToInteger(xsArg(2));
	xsmcSetArrayBuffer(xsResult, NULL, length);
	if (ESP_OK != esp_partition_read(p, offset, xsmcToArrayBuffer(xsResult), length))
		xsUnknownError("read failed");
}

void xs_parklink_ota_write(xsMachine *the)
{
	const esp_partition_t *p = slotPartition(the, xsmcToInteger(xsArg(0)));
	int offset = xsmcToInteger(xsArg(1));
	void *data;
	xsUnsignedValue size;
	xsmcGetBufferReadable(xsArg(2), &data, &size);
	if (ESP_OK != esp_partition_write(p, offset, data, size))
		xsUnknownError("write failed");
}

void xs_parklink_ota_erase(xsMachine *the)
{
	const esp_partition_t *p = slotPartition(the, xsmcToInteger(xsArg(0)));
	int sector = xsmcToInteger(xsArg(1));
	if (ESP_OK != esp_partition_erase_range(p, sector * SPI_FLASH_SEC_SIZE, SPI_FLASH_SEC_SIZE))
		xsUnknownError("erase failed");
}

void xs_parklink_ota_set_boot(xsMachine *the)
{
	if (ESP_OK != esp_ota_set_boot_partition(slotPartition(the, xsmcToInteger(xsArg(0)))))
		xsUnknownError("set boot partition failed");
}

/* esp_ota_img_states_t of a slot: 0 new, 1 pending verify, 2 valid, 3 invalid, 4 aborted; -1 none */
void xs_parklink_ota_state(xsMachine *the)
{
	esp_ota_img_states_t state;
	if (ESP_OK != esp_ota_get_state_partition(slotPartition(the, xsmcToInteger(xsArg(0))), &state))
		xsmcSetInteger(xsResult, -1);
	else
		xsmcSetInteger(xsResult, (int)state);
}

void xs_parklink_ota_confirm(xsMachine *the)
{
	if (ESP_OK != esp_ota_mark_app_valid_cancel_rollback())
		xsUnknownError("confirm failed");
}

void xs_parklink_ota_rollback(xsMachine *the)
{
	esp_ota_mark_app_invalid_rollback_and_reboot();
	esp_restart(); /* no other valid slot: restart anyway, the bootloader decides */
}

void xs_parklink_ota_restart(xsMachine *the)
{
	esp_restart();
}
