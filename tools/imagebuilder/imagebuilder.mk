# The Linux guest's boot files (included by the top-level Makefile).
#   build/linux/initramfs.cpio.gz        tools/mkinitramfs.py over Debian's busybox-static:arm64
#   build/qemu-virt/board-smp2.dtb       QEMU virt's tree with 2 CPUs (for a guest with 2 vCPUs)
#   linux-config                         tools/imagebuilder/moat-imagebuilder LINUX_CFG -> LINUX_DIR
#                                        (host.dtb, qemu.args, boot.source, boot.scr), LINUX_DIR being
#                                        $(IMG_OUT)/linux/<config name>
ifndef MOAT_IMAGEBUILDER_MK
MOAT_IMAGEBUILDER_MK := 1

.PHONY: linux-config
LINUX_OUT := $(BUILD)/linux
LINUX_CFG ?= tools/imagebuilder/examples/$(BOARD)-linux.cfg
LINUX_DIR = $(IMG_OUT)/linux/$(notdir $(basename $(LINUX_CFG)))
LINUX_TREES := $(IMG_OUT)/board.dtb $(if $(filter qemu-virt,$(BOARD)),$(BUILD)/qemu-virt/board-smp2.dtb)

.deps/linux/busybox .deps/linux/Image:
	tools/install-deps.sh

$(LINUX_OUT)/initramfs.cpio.gz: tools/mkinitramfs.py .deps/linux/busybox
	tools/mkinitramfs.py --busybox .deps/linux/busybox $@

$(BUILD)/qemu-virt/board-smp2.dtb:
	@mkdir -p $(dir $@)
	qemu-system-aarch64 -machine $(QEMU_MACHINE),dumpdtb=$@ -cpu cortex-a57 -smp 2 -m 1G -nographic -nic none -device edu >/dev/null

$(LINUX_DIR)/qemu.args: $(LINUX_CFG) tools/imagebuilder/moat-imagebuilder $(LINUX_TREES) $(IMG_OUT)/Image \
                        $(LINUX_OUT)/initramfs.cpio.gz .deps/linux/Image $(HOST_OUT)/moat-dt
	MOAT_DT=$(HOST_OUT)/moat-dt tools/imagebuilder/moat-imagebuilder $(LINUX_CFG) -o $(LINUX_DIR)

linux-config: $(LINUX_DIR)/qemu.args

# The passthrough guest `make run-passthrough` boots (PT_CFG; tests/qemu/linux_passthrough.sh
# boots the same guest with its own copies):
#   build/linux/passthrough-initramfs.cpio.gz  busybox, Debian's virtio modules, tests/qemu/passthrough.init
#   build/linux/disk.img                       tools/mkdisk.py: 8 MiB of known pseudo-random data, then zeroes
#   PT_DIR                                     moat-imagebuilder PT_CFG -> host.dtb, qemu.args, boot.scr
PT_CFG ?= tools/imagebuilder/examples/qemu-virt-passthrough.cfg
PT_DIR = $(IMG_OUT)/linux/$(notdir $(basename $(PT_CFG)))
PT_DISK := $(LINUX_OUT)/disk.img

$(LINUX_OUT)/passthrough-initramfs.cpio.gz: tools/mkinitramfs.py tests/qemu/passthrough.init .deps/linux/busybox .deps/linux/Image
	tools/mkinitramfs.py --busybox .deps/linux/busybox --modules .deps/linux/modules --init tests/qemu/passthrough.init $@

$(PT_DISK): tools/mkdisk.py
	@mkdir -p $(dir $@)
	tools/mkdisk.py $@ > $@.md5

$(PT_DIR)/qemu.args: $(PT_CFG) tools/imagebuilder/moat-imagebuilder $(IMG_OUT)/board.dtb $(IMG_OUT)/Image \
                     $(LINUX_OUT)/passthrough-initramfs.cpio.gz .deps/linux/Image $(HOST_OUT)/moat-dt
	MOAT_DT=$(HOST_OUT)/moat-dt tools/imagebuilder/moat-imagebuilder $(PT_CFG) -o $(PT_DIR)

.PHONY: passthrough-config
passthrough-config: $(PT_DIR)/qemu.args $(PT_DISK)

endif
