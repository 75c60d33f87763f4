# BLE advertisement codecs: adv (AD structures), bthome (+ bthome_objects, ccm), ibeacon, eddystone.
